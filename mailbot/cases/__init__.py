"""Cases: the models and the one service that changes them."""

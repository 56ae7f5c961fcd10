"""Inbound: mailbox -> ledger -> parse -> filters -> thread match -> extract -> case."""

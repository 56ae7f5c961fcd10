"""Reply text: the words the sender wrote in this message, without what they replied to.

In: a message body (plain text, or HTML with ``html=True``) for ``new_text``, or a whole message
for ``reply_text`` (its first text/plain part, else its first HTML part; never an attachment).
Out: the new text, trimmed; "" when the message holds nothing new (a bare forward, a quote with
no answer). Advisors' commands (``#status active``) are read from this text only, so where the
rules must guess, a line counts as quoted rather than new.
On failure: nothing is raised; a body that breaks a rule gives "" and a warning in the log.
Work is capped (characters read, characters a pattern sees of a line), so time stays linear.

Rules, in order:
1. HTML only: cut the markup at the first quoting element (``<blockquote>`` other than Gmail's
   indent, ``gmail_quote``, ``divRplyFwdMsg``, ``appendonsend``, Outlook's ``border-top:solid
   #E1E1E1`` header box, ``yahoo_quoted``, ``moz-cite-prefix``, ...), then reduce it to text;
   the attribution left above the cut goes in step 3.
2. Mend attributions that clients broke: Gmail's "<a@b.example" + ">:", Polymail's "> wrote:".
3. Walk the lines from the top:
   a. a ``>`` block (and lines the client wrapped out of it) is dropped with the blank lines
      after it; unquoted text after it stays: an inline or bottom-posted answer;
   b. a separator ("-----Original Message-----", "---------- Forwarded message", "Begin
      forwarded message:", a rule above headers) or a header block ("From: / Sent: / To: /
      Subject:" in some twenty languages) ends the new text;
   c. an attribution ("On ... wrote:", "Am ... schrieb ...:", "Le ... a écrit :", "... 写道：",
      a date and "<address>:", wrapped over up to three lines) right above a ``>`` block is
      dropped with it; above unquoted text it ends the new text if it holds a date, an address
      or only a name ("Pat Coordinator wrote:"; "Here is what the officer wrote:" stays).
4. Signature: a "Sent from my iPhone" or "CAUTION: external sender" line at the very top is
   dropped; the text is cut at "-- ", an underscore rule or a device's "Sent from my ..." line
   ("Von meinem iPhone gesendet", "Get Outlook for iOS", ...), at another rule ("-----", "—")
   above a short signature-like block, and before a sign-off ("Thanks,", "Mit freundlichen
   Grüßen", "-Pat") with at most a short name block under it. Those two guesses never take a
   line that starts with "#" (a command) for part of a signature.
5. Blank lines (and invisible marks) at either end are trimmed.
"""

from __future__ import annotations

import logging
import re
from email.message import Message

from mailbot.inbound.parse import html_to_text, parse

log = logging.getLogger(__name__)

_MAX_BODY_CHARS = 100_000  # the new text is at the top; history beyond this is not read
_MAX_HTML_CHARS = 500_000
_MAX_LINE_CHARS = 400  # what the line patterns see of one line
_ATTRIBUTION_LINES = 3  # an attribution wraps over at most this many lines
_POLYMAIL_LINES = 5  # "On ... Name", "", "<", "mailto:Name <a@b>", "> wrote:"
_HEADER_WINDOW = 6  # lines after a "From:" in which another header must follow
_HEADER_LINES = 3  # header lines that make a block even without an address or a date
_INLINE_HEADERS = 3  # "Temat: ... Nadawca: ... Adresat:" run together on one line
_WRAP_COLUMN = 60  # a quoted line this long may have been wrapped by the sender's client
_SIGN_OFF_TAIL_LINES = 4  # short lines that may follow a sign-off ("Thanks,")
_RULE_TAIL_LINES = 12  # short lines that may follow a rule ("-----") above a signature
_SIGNATURE_LINE_CHARS = 80
_SENTENCE_WORDS = 6  # a line ending in "." with this many words is prose, not a signature
# Spaces, and marks that render as nothing (Mailtrack's U+1427, bidi and zero-width marks).
_INVISIBLE = " \t\u00a0\u1427\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u2060\ufeff"

# --- HTML -------------------------------------------------------------------------------------

_HTML_TAG = re.compile(r"<(blockquote|div|span|hr)\b([^<>]{0,2000})>", re.IGNORECASE)
_HTML_QUOTE_CLASS = re.compile(
    r"""\bclass\s*=\s*["']?[^"'>]*?(?:gmail_quote|gmail_attr|yahoo_quoted|moz-cite-prefix"""
    r"""|moz-forward-container|OutlookMessageHeader|protonmail_quote|zmail_extra"""
    r"""|mail-editor-reference-message-container)""",
    re.IGNORECASE,
)
_HTML_QUOTE_ID = re.compile(
    r"""\bid\s*=\s*["']?[\w-]*?(?:divRplyFwdMsg|appendonsend|OLK_SRC_BODY_SECTION|yahoo_quoted"""
    r"""|stopSpelling)""",
    re.IGNORECASE,
)
_HTML_OUTLOOK_HEADER = re.compile(r"border-top\s*:\s*solid\s+#(?:E1E1E1|B5C4DF)\b", re.IGNORECASE)
_HTML_INDENT = re.compile(r"border\s*:\s*none", re.IGNORECASE)  # Gmail's indent button
_HTML_STRAY_LT = re.compile(r"<(?![A-Za-z!/?][^<>]{0,5000}>)")
_HTML_PRE = re.compile(r"<pre\b", re.IGNORECASE)
_HTML_NEWLINES = re.compile(r"[\r\n]+")

# --- quotes and attributions -----------------------------------------------------------------

_QUOTE = re.compile(r"^[ \t]*>")
_ADDRESS_CLOSE = re.compile(r"^\s*>\s*[:：]\s*$")
_WROTE = (
    r"wrote|writes|a\s+écrit|écrit|schrieb|geschrieben|escribió|escribio|escrit|escreveu|escreve"
    r"|ha\s+scritto|scrisse|schreef|geschreven|skrev|skreiv|kirjoitti|kirjutas|napisał\(a\)"
    r"|napisała|napisał|napisana|napisano|pisze|napsal\(a\)|napsala|napsal|napísal|napisao"
    r"|napisal|написал\(а\)|написала|написал|написав|написа|написао|пишет|пише|írta|a\s+scris"
    r"|rašė|rakstīja|έγραψε|yazdı|va\s+escriure|đã\s+viết|menulis|כתב|كتب|เขียน"
)
_ATTRIBUTION_VERB = re.compile(
    rf"(?:(?<!\w)(?:{_WROTE})(?!\w)[^\n]{{0,120}}?[:：]|写道|寫道|のメッセージ|작성)\s*[:：]?\s*$",
    re.IGNORECASE,
)
_QUOTED_VERB = re.compile(rf"^\s*>\s*(?:{_WROTE})\s*[:：]\s*$", re.IGNORECASE)
_NAME_WROTE = re.compile(rf"^(.{{1,60}}?)\s+(?:{_WROTE})\s*[:：]$", re.IGNORECASE)
_NAME_WORDS = 4
_NAME_WROTE_CHARS = 100
_ATTRIBUTION_VERB_NO_COLON = re.compile(rf"(?<!\w)(?:{_WROTE})\s*$", re.IGNORECASE)
_ATTRIBUTION_FRAME = " -="  # Zoho writes "---- On ... wrote ----"
_ATTRIBUTION_START = re.compile(
    r"^\s*(?:On|Le|Am|El|Il|Op|Em|På|Den|W\s+dniu|Dnia|Dne|В|Στις|Kl\.|Vào|在)(?!\w)"
    r"|^\s*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|^\s*\d{4}年",
    re.IGNORECASE,
)
# Gmail's "2016-03-03 17:21 GMT+01:00 Name <a@b>:", also seen without the colon or address.
_DATED_ATTRIBUTION = re.compile(r"^\s*\d{4}[/-]\d{1,2}[/-]\d{1,2}\b.{0,160}?(?:@|\bGMT[+-]\d)")
# "30.09.2017, 18:30, "John" <j@x.example>:": a date near the start, an address at the end.
_ADDRESS_AT_END = re.compile(r"<[^<>@\s]+@[^<>\s]+>\)?\s*[:：]$")
_DATE_LEAD = 40
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_DATE_OR_TIME = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}[:.]\d{2}|(?:19|20)\d{2}")

# --- separators and header blocks -------------------------------------------------------------

_SEPARATOR = re.compile(
    r"^\s*[-_=*]{2,}\s*(?:original\s+message|reply\s+message|ursprüngliche\s+nachricht"
    r"|message\s+d'origine|mensaje\s+original|messaggio\s+originale|mensagem\s+original"
    r"|oorspronkelijk\s+bericht|oprindelig\s+(?:besked|meddelelse)|opprinnelig\s+melding"
    r"|ursprungligt\s+meddelande|originalmeddelande|alkuperäinen\s+viesti"
    r"|wiadomość\s+oryginalna|oryginalna\s+wiadomość|původní\s+zpráva|eredeti\s+üzenet"
    r"|исходное\s+сообщение|пересылаемое\s+сообщение|forwarded\s+message"
    r"|weitergeleitete\s+nachricht|message\s+transféré|mensaje\s+reenviado"
    r"|messaggio\s+inoltrato|doorgestuurd\s+bericht|mensagem\s+encaminhada"
    r"|videresendt\s+(?:melding|besked)|vidarebefordrat\s+meddelande|original)\s*[-_=*]{2,}"
    r"|^\s*(?:begin\s+forwarded\s+message|anfang\s+der\s+weitergeleiteten\s+nachricht"
    r"|début\s+du\s+message\s+réexpédié|inicio\s+del\s+mensaje\s+reenviado"
    r"|inizio\s+messaggio\s+inoltrato|doorgestuurd\s+bericht|forwarded\s+message)\s*[:：]?\s*$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*(?:_{2,}|-{3,}|={3,}|\*{3,})\s*$")
_UNDERSCORE_RULE = re.compile(r"^\s*_{2,}\s*$")
_DASHED_TITLE = re.compile(r"^\s*[-_=*]{3,}\s*[^-_=*\s][^-_=*]{1,60}[-_=*]{3,}\s*$")
_FROM_KEYS = (
    r"from|von|de|da|van|fra|från|od|от|від|lähettäjä|feladó|kimden|από|expéditeur|remitente"
    r"|mittente|afzender|avsändare|nadawca|odesílatel|от\s+кого|发件人|寄件者|差出人|보낸\s+사람"
    r"|من"
)
_DATE_KEYS = (
    r"sent|date|gesendet|datum|envoy[ée](?:\s+le)?|enviado|fecha|inviato|data|verzonden|sendt"
    r"|skickat|wysłano|отправлено|дата|lähetetty|päivämäärä|elküldve|dátum|gönderildi|tarih"
    r"|odesláno|发送时间|日期|傳送時間|送信日時|보낸\s+날짜|στάλθηκε|ημερομηνία|message\s+du"
    r"|تم\s+الإرسال|التاريخ"
)
_OTHER_KEYS = (
    r"to|an|à|a|para|aan|til|till|do|кому|vastaanottaja|címzett|kime|komu|收件人|收件者|宛先"
    r"|받는\s+사람|προς|cc|kopie|copie\s+à|subject|betreff|objet|asunto|oggetto|onderwerp|emne"
    r"|ämne|temat|тема|aihe|tárgy|konu|předmět|主题|主旨|件名|제목|θέμα|sujet|assunto|reply-to"
    r"|إلى|الموضوع|نسخة"
)
_HEADER_KEY = r"^\s*[*_]{{0,2}}\s?(?:{keys})[*_]{{0,2}}\s*[:：][*_]{{0,2}}"
_FROM_HEADER = re.compile(_HEADER_KEY.format(keys=_FROM_KEYS), re.IGNORECASE)
_DATE_HEADER = re.compile(_HEADER_KEY.format(keys=_DATE_KEYS), re.IGNORECASE)
_ANY_HEADER = re.compile(
    _HEADER_KEY.format(keys=f"{_FROM_KEYS}|{_DATE_KEYS}|{_OTHER_KEYS}"), re.IGNORECASE
)
_INLINE_HEADER = re.compile(
    rf"(?<![^\W\d_])(?:{_FROM_KEYS}|{_DATE_KEYS}|{_OTHER_KEYS})\s*[:：]", re.IGNORECASE
)

# --- signatures -------------------------------------------------------------------------------

_SIG_DELIMITER = re.compile(r"^--\s*$")
_URL_TAIL = r"(?:\s*[<\[(]\s*(?:https?://|mailto:)[^\s>\])]*\s*[>\])])?"
_MOBILE = re.compile(
    r"^\s*(?:"
    r"sent\s+(?:from|with|via|using|by)\s+(?:my\s+|the\s+)?[^\s,;:][^,;:]{0,50}"
    r"|get\s+outlook\s+for\s+\w+"
    r"|envoyé\s+(?:de|depuis|à\s+partir\s+de|avec)\s+[^,;]{1,50}"
    r"|(?:von|vom)\s+meinem\s+[^,;]{1,40}\s+gesendet"
    r"|gesendet\s+(?:von|mit|vom|aus|über)\s+[^,;]{1,50}"
    r"|enviado\s+(?:desde|do|de|con|com|dal)\s+[^,;]{1,50}"
    r"|inviato\s+da\s+[^,;]{1,50}"
    r"|(?:verzonden|verstuurd)\s+(?:vanaf|vanuit|met|via|van)\s+[^,;]{1,50}"
    r"|(?:skickat|skickad|sendt|sendes)\s+(?:från|fra)\s+[^,;]{1,50}"
    r"|lähetetty\s+[^,;]{1,50}"
    r"|wysłan[eo]\s+z\s+[^,;]{1,50}"
    r"|odesláno\s+z\s+[^,;]{1,50}"
    r"|trimis\s+de\s+pe\s+[^,;]{1,50}"
    r"|отправлено\s+(?:с|из)\s+[^,;]{1,50}"
    r"|надіслано\s+з\s+[^,;]{1,50}"
    r"|obter\s+o\s+outlook\s+para\s+\w+"
    r"|az\s+\S+\s+küldve"
    r"|\u202b?أُ?رسلت\s+من\s+[^,;]{1,40}"
    r")"
    rf"{_URL_TAIL}\s*\.?\u202c?\s*$",
    re.IGNORECASE,
)
_DEVICE = re.compile(
    r"iphone|ipad|android|galaxy|samsung|blackberry|huawei|xiaomi|pixel|nokia|motorola|xperia"
    r"|oneplus|wiko|mobile|phone|tablet|device|outlook|mail|yahoo|aol|windows|typeapp|app\b"
    r"|mobil|handy|telefon|téléphone|teléfono|portable|móvil|cellulare|\biOS",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^\s*(?:(?:(?:best|kind|warm|warmest|many|with\s+kind)\s+)?(?:regards|wishes)|best|cheers|thanks"
    r"|thank\s+you|many\s+thanks|thanks\s+again|sincerely|yours(?:\s+(?:truly|sincerely))?"
    r"|all\s+the\s+best|take\s+care|cordialement|bien\s+cordialement|bien\s+à\s+vous|merci"
    r"|(?:mit\s+)?(?:freundlichen?|vielen?|besten?|lieben?|herzlichen?)\s+grü(?:ß|ss)en?"
    r"|grü(?:ß|ss)e|gru(?:ß|ss)|lg|mfg|vg"
    r"|saludos(?:\s+cordiales)?|un\s+saludo|atentamente|cumprimentos|atenciosamente|obrigad[oa]"
    r"|cordiali\s+saluti|saluti|grazie|met\s+vriendelijke\s+groet(?:en)?|groeten|groet"
    r"|med\s+vänlig\s+hälsning|vänliga\s+hälsningar|(?:med\s+)?venlig\s+hilsen|hilsen|mvh|kh|vh"
    r"|pozdrawiam|z\s+poważaniem|s\s+pozdravem|с\s+уважением|ystävällisin\s+terveisin)"
    r"\s*[,.!]?\s*$",
    re.IGNORECASE,
)
_EXTERNAL_BANNER = re.compile(
    r"^\[?(?:caution|warning|attention|external(?:\s+(?:email|sender|message))?)\]?\s*:"
    r".{0,80}\b(?:external|outside)\b",
    re.IGNORECASE,
)
_NAME_SIGN_OFF = re.compile(r"^[-/~]\s?[^\W\d_][\w.'-]*(?:\s[\w.'-]+){0,3}$")
_SIG_RULE = re.compile(r"^\s*(?:(?:[-=*~+_—–]\s*){3,}|[—–])\s*$")


def new_text(body: str, *, html: bool = False) -> str:
    """The new text of a reply body; ``html=True`` reduces HTML to text first."""
    try:
        text = _html_new_part(body) if html else body
        return _plain_new_text(text)
    except Exception as exc:  # a reply that breaks a rule must not stop the message
        log.warning("reply text: %s on a %d-character body", type(exc).__name__, len(body))
        return ""


def reply_text(raw: bytes) -> str:
    """The new text of a whole message: its first text/plain part, else its first HTML part."""
    try:
        message = parse(raw)
        plain = _first_part(message.message, "text/plain")
        markup = "" if plain.strip() else _first_part(message.message, "text/html")
    except Exception as exc:  # parse() already falls back; this guards odd MIME trees
        log.warning("reply text: %s while reading the message", type(exc).__name__)
        return ""
    if plain.strip():
        return new_text(plain)
    if markup.strip():
        return new_text(markup, html=True)
    return new_text(message.text)


def _first_part(msg: Message, content_type: str) -> str:
    """The decoded text of the first body part of that type, not looking inside attachments
    or attached messages."""
    stack = [msg]
    while stack:
        part = stack.pop()
        if part.is_multipart():
            if part.get_content_maintype() != "message":
                stack.extend(reversed(part.get_payload()))
            continue
        if part.get_content_type() != content_type or part.get_filename():
            continue
        if part.get_content_disposition() == "attachment":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return _decode(payload, part.get_content_charset())
    return ""


def _decode(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


# --- HTML -------------------------------------------------------------------------------------


def _html_new_part(markup: str) -> str:
    markup = markup[:_MAX_HTML_CHARS]
    markup = markup[: _html_quote_start(markup)]
    if not _HTML_PRE.search(markup):  # outside <pre>, a line break in the source is a space
        markup = _HTML_NEWLINES.sub(" ", markup)
    # A "<" that opens no tag makes html.parser search the rest of the body for every one.
    return html_to_text(_HTML_STRAY_LT.sub("&lt;", markup))


def _html_quote_start(markup: str) -> int:
    """Where the first quoting element opens, or the length of the markup."""
    for tag in _HTML_TAG.finditer(markup):
        name, attributes = tag.group(1).lower(), tag.group(2)
        if name == "blockquote" and not _HTML_INDENT.search(attributes):
            return tag.start()
        if _HTML_QUOTE_CLASS.search(attributes) or _HTML_QUOTE_ID.search(attributes):
            return tag.start()
        if name == "div" and _HTML_OUTLOOK_HEADER.search(attributes):
            return tag.start()
    return len(markup)


# --- plain text -------------------------------------------------------------------------------


def _plain_new_text(body: str) -> str:
    text = body[:_MAX_BODY_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    lines = _mend_broken_addresses(text.split("\n"))
    kept = _drop_signature(_trim(_drop_quoted(lines)))
    return "\n".join(_trim(kept)).rstrip()


def _trim(lines: list[str]) -> list[str]:
    """Without blank lines (or lines of invisible marks, such as Mailtrack's) at either end."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip(_INVISIBLE):
        start += 1
    while end > start and not lines[end - 1].strip(_INVISIBLE):
        end -= 1
    return lines[start:end]


def _mend_broken_addresses(lines: list[str]) -> list[str]:
    """Join what clients broke out of an attribution: Gmail's "<a@b.example" above ">:", and
    Polymail's "On ... Name" / "<" / "mailto:Name <a@b>" / "> wrote:"."""
    mended: list[str] = []
    for line in lines:
        if mended and _ADDRESS_CLOSE.match(line) and _unclosed_address(mended[-1]):
            mended[-1] = mended[-1].rstrip() + line.strip()
        elif _QUOTED_VERB.match(line) and (start := _polymail_start(mended)) is not None:
            parts = [_clip(x) for x in mended[start:] if x.strip()] + [line.strip()]
            del mended[start:]
            mended.append(" ".join(parts))
        else:
            mended.append(line)
    return mended


def _unclosed_address(line: str) -> bool:
    tail = line[-_MAX_LINE_CHARS:]
    return "<" in tail and ">" not in tail[tail.rindex("<") :]


def _polymail_start(mended: list[str]) -> int | None:
    if len(mended) < _POLYMAIL_LINES or not mended[-1].strip().lower().startswith("mailto:"):
        return None
    if mended[-2].strip() != "<":
        return None
    for start in range(len(mended) - 3, len(mended) - _POLYMAIL_LINES - 1, -1):
        if _ATTRIBUTION_START.match(_clip(mended[start])):
            return start
    return None


def _drop_quoted(lines: list[str]) -> list[str]:
    """The lines before the quoted history, and unquoted answers between quote blocks."""
    kept: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if _QUOTE.match(line):
            i = _skip_quote_block(lines, i)
            continue
        if _starts_history(lines, i):
            _drop_trailing_rules(kept)
            return kept
        span = _attribution_span(lines, i, kept)
        if span:
            after = _next_non_blank(lines, i + 1)
            if after < n and _QUOTE.match(lines[after]):
                del kept[len(kept) - span + 1 :]
                i = after
                continue
            if span > 1 or _has_evidence(_clip(line)) or _named_attribution(_clip(line)):
                del kept[len(kept) - span + 1 :]
                _drop_trailing_rules(kept)
                return kept
        kept.append(line)
        i += 1
    return kept


def _skip_quote_block(lines: list[str], i: int) -> int:
    """The index after a quote block: quoted lines, blank lines, and lines the sender's client
    wrapped out of the quote (lower-case, between two quoted lines, after a long one)."""
    n = len(lines)
    while i < n and (
        _QUOTE.match(lines[i]) or not lines[i].strip() or _wrapped_out_of_quote(lines, i)
    ):
        i += 1
    return i


def _wrapped_out_of_quote(lines: list[str], i: int) -> bool:
    stripped = lines[i].lstrip()
    return (
        0 < i < len(lines) - 1
        and stripped[:1].islower()
        and _QUOTE.match(lines[i - 1]) is not None
        and len(lines[i - 1].rstrip()) >= _WRAP_COLUMN
        and _QUOTE.match(lines[i + 1]) is not None
    )


def _next_non_blank(lines: list[str], i: int) -> int:
    n = len(lines)
    while i < n and not lines[i].strip():
        i += 1
    return i


def _clip(line: str) -> str:
    return line[:_MAX_LINE_CHARS].strip(_INVISIBLE)


def _drop_trailing_rules(kept: list[str]) -> None:
    """A cut leaves the blank lines and rules ("____", "====") that introduced the history."""
    while kept and (not kept[-1].strip() or _RULE.match(kept[-1]) or _DASHED_TITLE.match(kept[-1])):
        kept.pop()


def _starts_history(lines: list[str], i: int) -> bool:
    line = _clip(lines[i])
    if not line:
        return False
    if _SEPARATOR.match(line):
        return True
    if _RULE.match(line) or _DASHED_TITLE.match(line):
        following = _next_non_blank(lines, i + 1)
        return following < len(lines) and _header_block(lines, following)
    return _header_block(lines, i)


def _header_block(lines: list[str], i: int) -> bool:
    """A "From:" (or "Sent:"/"Date:") line with more header lines soon after: two more, or one
    more when the block also holds an address or a date header. Or a header line that holds
    three headers run together."""
    first = _clip(lines[i])
    if _ANY_HEADER.match(first) and len(_INLINE_HEADER.findall(first)) >= _INLINE_HEADERS:
        return True
    if not (_FROM_HEADER.match(first) or _DATE_HEADER.match(first)):
        return False
    block = [first]
    block += [x for x in map(_clip, lines[i + 1 : i + 1 + _HEADER_WINDOW]) if _ANY_HEADER.match(x)]
    if len(block) >= _HEADER_LINES:
        return True
    text = "\n".join(lines[i : i + 1 + _HEADER_WINDOW])
    dated = any(_DATE_HEADER.match(x) for x in block)
    return len(block) > 1 and (dated or "@" in text)


def _attribution_span(lines: list[str], i: int, kept: list[str]) -> int:
    """How many lines (ending at line i) form an attribution; 0 when line i ends none.

    The shortest block that reads as an attribution is taken, then grown upwards over lines
    that carry a date or an address and do not end a sentence ("On Tue, 16 Nov 2021, John
    <j@x>" above "wrote:"), so that a reply's last line is never taken for part of it.
    """
    line = _clip(lines[i]).strip(_ATTRIBUTION_FRAME)
    if not line or not (
        line.endswith((":", "："))
        or _ATTRIBUTION_VERB_NO_COLON.search(line)
        or _DATED_ATTRIBUTION.match(line)
    ):
        return 0
    limit = min(_ATTRIBUTION_LINES, len(kept) + 1)
    span = next((k for k in range(1, limit + 1) if _is_attribution(_joined(lines, i, k))), 0)
    while 0 < span < limit:
        above = _clip(lines[i - span])
        if not (_ATTRIBUTION_START.match(above) or _has_evidence(above)):
            break
        if above.endswith((".", "!", "?")) or not _is_attribution(_joined(lines, i, span + 1)):
            break
        span += 1
    return span


def _joined(lines: list[str], end: int, span: int) -> str:
    block = [_clip(x) for x in lines[end - span + 1 : end + 1]]
    if not all(block) or any(_QUOTE.match(x) for x in block[:-1]):
        return ""
    return "\n".join(block).strip(_ATTRIBUTION_FRAME)


def _is_attribution(text: str) -> bool:
    """Whether a block of one to three lines (joined by newlines) reads as an attribution."""
    if not text or len(text) > _MAX_LINE_CHARS:
        return False
    flat = text.replace("\n", " ")
    if _ATTRIBUTION_VERB.search(flat):
        return True
    if _ATTRIBUTION_VERB_NO_COLON.search(flat):
        return bool(_ATTRIBUTION_START.match(flat)) and _has_evidence(flat)
    if _DATED_ATTRIBUTION.match(flat):
        return True
    if "\n" in text and not _ATTRIBUTION_START.match(flat):
        return False
    return bool(_ADDRESS_AT_END.search(flat)) and bool(_DATE_OR_TIME.search(flat[:_DATE_LEAD]))


def _named_attribution(line: str) -> bool:
    """ "Pat Coordinator wrote:", "MVAI wrote:": a name of capitalised words only, so that
    "Here is what the officer wrote:" stays text."""
    match = _NAME_WROTE.match(line) if len(line) <= _NAME_WROTE_CHARS else None
    words = match.group(1).strip("\"' ").split() if match else []
    return 0 < len(words) <= _NAME_WORDS and all(word[:1].isupper() for word in words)


def _has_evidence(text: str) -> bool:
    return bool(_DATE_OR_TIME.search(text) or _EMAIL.search(text))


# --- signatures -------------------------------------------------------------------------------


def _drop_signature(lines: list[str]) -> list[str]:
    lines = _drop_leading_mobile_line(lines)
    lines = _cut_at_delimiter(lines)
    return _drop_sign_off(lines)


def _drop_leading_mobile_line(lines: list[str]) -> list[str]:
    """A "Sent from my iPhone" some clients put above the text, or a gateway's
    "CAUTION: this email originated from outside" banner."""
    first = _next_non_blank(lines, 0)
    line = _clip(lines[first]) if first < len(lines) else ""
    if (_MOBILE.match(line) and _DEVICE.search(line)) or _EXTERNAL_BANNER.match(line):
        rest = lines[first + 1 :]
        if any(x.strip() for x in rest):
            return rest
    return lines


def _cut_at_delimiter(lines: list[str]) -> list[str]:
    """Cut at "-- ", an underscore rule or a device's "Sent from my iPhone"; below some text, at
    another "Sent from ..." line or rule ("-----", "—") when only a short signature-like block
    follows it."""
    non_blank = [i for i, x in enumerate(lines) if x.strip()]
    near_end = non_blank[-_RULE_TAIL_LINES - 1] if len(non_blank) > _RULE_TAIL_LINES else 1
    for i, line in enumerate(lines):
        clipped = _clip(line)
        if _SIG_DELIMITER.match(clipped) or _UNDERSCORE_RULE.match(clipped):
            return lines[:i]
        mobile = _MOBILE.match(clipped)
        if mobile and _DEVICE.search(clipped):  # what follows is its signature or the quote
            return lines[:i]
        if mobile and i > 0 and _signature_block(lines, i + 1, _SIGN_OFF_TAIL_LINES):
            return lines[:i]
        if i >= near_end and _SIG_RULE.match(clipped) and _signature_block(lines, i + 1):
            return lines[:i]
    return lines


def _drop_sign_off(lines: list[str]) -> list[str]:
    """A closing phrase ("Thanks,", "Mit freundlichen Grüßen") at the end of the text, with
    at most a short name block under it; never the whole text."""
    non_blank = [i for i, x in enumerate(lines) if x.strip()]
    first = max(1, len(non_blank) - _SIGN_OFF_TAIL_LINES - 1)
    for pos in range(first, len(non_blank)):
        i = non_blank[pos]
        line = _clip(lines[i])
        last = pos == len(non_blank) - 1
        if last and not lines[i - 1].strip() and _NAME_SIGN_OFF.match(lines[i]):
            return lines[:i]
        if _SIGN_OFF.match(line) and _signature_block(lines, i + 1, _SIGN_OFF_TAIL_LINES):
            return lines[:i]
    return lines


def _signature_block(lines: list[str], start: int, most: int = _RULE_TAIL_LINES) -> bool:
    """From ``start`` to the end: at most ``most`` short lines (names, titles, numbers, links),
    none of them a sentence, a question or a command."""
    seen = 0
    for index in range(start, len(lines)):
        clipped = _clip(lines[index])
        if not clipped:
            continue
        seen += 1
        if seen > most or not _signature_line(clipped):
            return False
    return True


def _signature_line(line: str) -> bool:
    if len(line) > _SIGNATURE_LINE_CHARS or line.startswith("#") or line.endswith("?"):
        return False
    return not (line.endswith(".") and len(line.split()) >= _SENTENCE_WORDS)

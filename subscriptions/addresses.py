"""Email addresses: what the pages accept, and one canonical key per mailbox.

Look-alike addresses such as ``ırıs@example.org`` (dotless ı) or ``iriſ@example.org``
(long s) pass Django's ``EmailField`` — its pattern matches them case-insensitively as
``iris`` — yet are other strings than ``iris@example.org``: they escaped the
per-address throttle and could squat an address so that its owner could never sign up.

The rule chosen: a local part (before the @) must be ASCII. Mail systems treat a
non-ASCII local part as its own mailbox (RFC 6531 SMTPUTF8; many do not accept one at
all), so normalising ``iriſ`` to ``iris`` would mail someone else, and such addresses
are refused with a clear error. The domain may be internationalised: it is stored in
its ASCII (IDNA) form, which is what mail is delivered to. Syntax and IDNA come from
the email-validator library (https://github.com/JoshData/python-email-validator), with
no DNS look-up.

:func:`canonical_key` is what addresses are compared, looked up and throttled by, and
what the database keeps unique (``Subscriber.email_key``): the local part NFKC-normalised
and case-folded, @, the ASCII domain in lower case. Local parts are compared without
case, as every common mail system delivers them.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from email_validator import EmailNotValidError, validate_email

__all__ = ["canonical_key", "normalize_address"]


def normalize_address(text: str) -> str:
    """The address ``text`` as it is stored and mailed: surrounding space removed, the
    domain in lower-case ASCII (IDNA), the local part as written.

    Raises ``ValidationError`` (with email-validator's explanation) for an address that
    is not valid, has a non-ASCII local part or a special-use domain (``localhost``,
    ``.test``, ``.invalid``, …).
    """
    try:
        checked = validate_email(text.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        raise ValidationError(str(error), code="invalid") from None
    return str(checked.ascii_email)


def canonical_key(address: str) -> str:
    """The key two addresses of one mailbox share: NFKC + casefold of the local part,
    ``@``, the domain in lower-case ASCII (IDNA when it can be encoded). Never raises;
    for any string, also addresses stored before :func:`normalize_address` existed."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        local, domain = domain, ""
    folded = unicodedata.normalize("NFKC", local).casefold()
    domain = unicodedata.normalize("NFKC", domain).casefold().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{folded}@{domain.lower()}"

"""Creating judges in bulk from a CSV (docs/recruitment.md): ``username,email,password``, email and password
optional. The whole file is refused, with each bad line's number, or every account is created in one transaction;
a password left empty is generated, and shown to the researcher once."""

from __future__ import annotations

import csv
import io
import secrets
import string
from dataclasses import dataclass

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import get_hasher
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from .models import Experiment

COLUMNS = ("username", "email", "password")
MAX_ROWS = 5000
# A password the file gives is hashed at full strength (PBKDF2, a million iterations: about 0.4 s of CPU each), all
# in the request: a file of more would outlast gunicorn's 30-second worker timeout. Generated ones cost nothing.
MAX_CHOSEN_PASSWORDS = 40
MAX_ERRORS_SHOWN = 20
# A generated password is random (131 bits), so it needs no key stretching against guessing: it is hashed with
# PBKDF2 at this many iterations, not the default's million (about 0.4 s of CPU each: 100 judges would take a
# minute). Django rehashes it at full strength at the judge's first login (the hasher's must_update).
GENERATED_PASSWORD_ITERATIONS = 1000


# Letters and digits only: easy to type, and the CSV that hands them out never takes one for a formula (a cell
# starting with - or = is prefixed with ' by judging.exports, which would change the password).
PASSWORD_ALPHABET = string.ascii_letters + string.digits
GENERATED_PASSWORD_LENGTH = 22  # 22 × log2(62) ≈ 131 random bits


def generated_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(GENERATED_PASSWORD_LENGTH))


class JudgeImportError(ValueError):
    """The file is refused whole; ``problems`` lists what is wrong, by line."""

    def __init__(self, problems: list[str]):
        shown = problems[:MAX_ERRORS_SHOWN]
        more = len(problems) - len(shown)
        super().__init__("; ".join(shown) + (f"; and {more} more" if more else ""))
        self.problems = problems


@dataclass(frozen=True)
class JudgeRow:
    line: int
    username: str
    email: str
    password: str  # empty: generate one


@dataclass(frozen=True)
class Created:
    username: str
    generated_password: str  # empty where the file gave the password


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (spreadsheets write one) is not part of the header
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise JudgeImportError([f"line {line}: not UTF-8 text (byte {exc.start + 1}); save the file as UTF-8 CSV"])


def parse_judges_csv(data: bytes) -> list[JudgeRow]:
    """The file's rows, checked: the header, each row's fields, usernames unique within the file and among existing
    accounts (regardless of case), valid emails and passwords. Raises JudgeImportError listing every problem."""
    User = get_user_model()
    reader = csv.reader(io.StringIO(_text(data), newline=""), strict=True)  # strict: a broken quote is an error
    try:
        header = [name.strip().lower() for name in next(reader, [])]
    except csv.Error as exc:
        raise JudgeImportError([f"line 1: {exc}"]) from None
    if not header or header[0] != "username" or set(header) - set(COLUMNS) or len(set(header)) != len(header):
        raise JudgeImportError(
            [f"line 1: the header must be username, then email and/or password (got {', '.join(header) or 'nothing'})"]
        )
    problems: list[tuple[int, str]] = []  # (line, what is wrong)
    rows: list[JudgeRow] = []
    first_line: dict[str, int] = {}
    max_length = User._meta.get_field("username").max_length
    try:
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                continue  # blank lines (a trailing newline, a spreadsheet's empty rows)
            if len(rows) >= MAX_ROWS:
                raise JudgeImportError([f"line {line}: more than {MAX_ROWS} judges in one file; split it"])
            if len(fields) != len(header):
                problems.append((line, f"{len(fields)} fields where the header has {len(header)}"))
                continue
            values = dict(zip(header, fields, strict=True))
            username, email = values["username"].strip(), values.get("email", "").strip()
            password = values.get("password", "")
            row_problems = []
            try:
                if not username or len(username) > max_length:
                    raise ValidationError(f"a username has 1 to {max_length} characters")
                User.username_validator(username)
            except ValidationError as error:
                row_problems.append(f"username {username!r}: {' '.join(error.messages)}")
            if username.lower() in first_line:
                row_problems.append(f"username {username!r} is also on line {first_line[username.lower()]}")
            else:
                first_line[username.lower()] = line
            if email:
                try:
                    validate_email(email)
                except ValidationError:
                    row_problems.append(f"{email!r} is not an email address")
            if password:
                try:
                    password_validation.validate_password(password, User(username=username, email=email))
                except ValidationError as error:
                    row_problems.append(f"password: {' '.join(error.messages)}")
            problems += [(line, p) for p in row_problems]
            rows.append(JudgeRow(line, username, email, password))
    except csv.Error as exc:
        problems.append((reader.line_num, str(exc)))
    existing = (
        User.objects.annotate(lowered=Lower("username"))
        .filter(lowered__in=list(first_line))
        .values_list("username", flat=True)
    )
    for name in sorted(existing):
        problems.append((first_line[name.lower()], f"username {name!r} already has an account"))
    chosen = [row for row in rows if row.password]
    if len(chosen) > MAX_CHOSEN_PASSWORDS:
        problems.append(
            (
                chosen[MAX_CHOSEN_PASSWORDS].line,
                f"more than {MAX_CHOSEN_PASSWORDS} passwords given in one file (each takes about 0.4 s of CPU to hash "
                "at full strength): leave passwords empty to have them generated, or split the file",
            )
        )
    if not rows and not problems:
        problems.append((1, "the file has a header but no judges"))
    if problems:
        raise JudgeImportError([f"line {line}: {what}" for line, what in sorted(problems, key=lambda p: p[0])])
    return rows


def judges_create(rows: list[JudgeRow], *, experiment: Experiment | None = None) -> list[Created]:
    """Create every account (and add them to a draft experiment's judges) in one transaction, or none."""
    User = get_user_model()
    fast = get_hasher("pbkdf2_sha256")
    created = []
    with transaction.atomic():
        if experiment is not None:
            experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
            if experiment.status != Experiment.Status.DRAFT:
                raise JudgeImportError(
                    [f"experiment {experiment.name!r} was launched with its trials planned: judges join drafts"]
                )
        for row in rows:
            judge = User(username=row.username, email=row.email)
            if row.password:
                judge.set_password(row.password)
                generated = ""
            else:
                generated = generated_password()
                judge.password = fast.encode(generated, fast.salt(), iterations=GENERATED_PASSWORD_ITERATIONS)
            try:
                with transaction.atomic():
                    judge.save()
            except IntegrityError:  # created meanwhile by someone else
                raise JudgeImportError([f"line {row.line}: username {row.username!r} already has an account"]) from None
            created.append(Created(row.username, generated))
        if experiment is not None:
            experiment.judges.add(*User.objects.filter(username__in=[row.username for row in rows]))
    return created

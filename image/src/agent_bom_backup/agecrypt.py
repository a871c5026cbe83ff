"""Client-side encryption to age recipients (https://age-encryption.org/v1), through pyrage.

pyrage binds the Rust ``age`` crate (rage); nothing here is cryptography of our own. An
encrypted object is a plain binary age file: ``age -d -i key.txt OBJECT`` decrypts it
with the standard tool (docs/runbook.md, the by-hand path).

* The backup needs only *public* keys (recipients: X25519 ``age1...``, or an SSH
  ed25519/RSA public key line). :class:`EncryptedStream` sits between pg_dump's pipe and
  the part reader: ``pyrage.encrypt_io`` runs in a thread, reading pg_dump's output in
  8 KiB reads and writing 64 KiB age chunks into a small bounded queue that the part
  reader drains (no plaintext on disk; at most :data:`QUEUE_CHUNKS` chunks in memory
  besides the part buffers). The plaintext's SHA-256 and size are computed on the way.
* The restore side holds the identity (``--identity FILE``): :func:`require_identity`
  proves, before anything changes, that it opens this backup (by decrypting the small
  roles object), :func:`decrypt_file` decrypts the downloaded dump into the scratch file
  pg_restore reads and checks the plaintext's SHA-256 against the manifest first.

age gives confidentiality, not authenticity: whoever holds a recipient (the backup pod)
can write an object that decrypts cleanly. The manifest's SHA-256s only say the objects
are the ones that manifest names; bucket policy, versioning and Object Lock protect the
pair (docs/runbook.md).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import BackupError, ConfigError, DumpError, RefusedError, VerifyError
from .log import event, get_logger
from .manifest import EncryptionRecord, Manifest

#: the manifest's ``encryption.format`` for age files
FORMAT = "age"
#: suffix of a local age file (the restore's download, an encrypted safety backup)
AGE_SUFFIX = ".age"
#: age chunks (64 KiB each) the encryptor may queue ahead of the part reader
QUEUE_CHUNKS = 16
#: the most the encryptor reads from the dump's pipe at once (pyrage reads 8 KiB at a time)
READ_AHEAD = 1024 * 1024
_X25519_PREFIX = "age1"
_SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")
_SECRET_PREFIX = "AGE-SECRET-KEY-"
_NO_MATCH = "no matching keys"


def _pyrage() -> Any:
    import pyrage  # noqa: PLC0415 - only commands that encrypt or decrypt pay for the import

    return pyrage


# --------------------------------------------------------------------------- recipients
@dataclass(frozen=True)
class Recipients:
    """Parsed age recipients and the strings they came from (what the manifest records)."""

    strings: tuple[str, ...]
    keys: tuple[Any, ...]

    @classmethod
    def parse(cls, values: Iterable[str], *, option: str = "--encrypt-to") -> "Recipients":
        """Each value one recipient; blank values (an env var's empty lines) are skipped.
        A malformed one is a :class:`ConfigError` (exit 3) naming it; a secret key given
        by mistake is refused without echoing it."""
        strings = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
        return cls(strings, tuple(_parse_recipient(s, option) for s in strings))

    def __bool__(self) -> bool:
        return bool(self.strings)


def _parse_recipient(text: str, option: str) -> Any:
    pyrage = _pyrage()
    hint = ("give an age X25519 public key (age1..., `age-keygen -y KEY_FILE` prints it) or an SSH "
            "ed25519/RSA public key line (ssh-ed25519 AAAA...)")
    if text.upper().startswith(_SECRET_PREFIX) or "PRIVATE KEY" in text:
        raise ConfigError(f"{option}: a recipient is a secret key (an identity), not a public key; "
                          "the backup needs only the public key", hint=hint + "; and rotate that identity now")
    shown = text if len(text) <= 80 else text[:77] + "..."
    try:
        if text.startswith(_X25519_PREFIX):
            return pyrage.x25519.Recipient.from_str(text)
        if text.startswith(_SSH_PREFIXES):
            return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        raise ConfigError(f"{option}: {shown!r} is not a valid age recipient ({exc})", hint=hint) from None
    raise ConfigError(f"{option}: {shown!r} is not an age recipient", hint=hint)


# --------------------------------------------------------------------------- encryption
class _Stopped(Exception):
    """Raised in the encryption thread when the reader went away (the upload stopped)."""


@dataclass
class Plaintext:
    """What went into an encryption: its size and SHA-256."""

    size: int = 0
    sha256: str = ""


class EncryptedStream:
    """``readinto(view)``'s bytes, encrypted to ``recipients``, as a ``readinto`` source.

    A thread runs ``pyrage.encrypt_io`` from ``readinto`` into a queue of at most
    :data:`QUEUE_CHUNKS` age chunks; :meth:`readinto` drains it. At the end of the source
    the age file is finished (its last chunk is marked final), so a source that ends early
    (pg_dump died) still makes a valid age file: the caller checks pg_dump's exit status
    before completing the upload, as without encryption. An encryption error is raised
    from :meth:`readinto`. :meth:`close` stops the thread (the upload failed)."""

    def __init__(self, readinto: Callable[[memoryview], int], recipients: Recipients) -> None:
        self._source = readinto
        self._hasher = hashlib.sha256()
        self.plaintext = Plaintext()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._pending = memoryview(b"")
        self._ahead = memoryview(b"")
        self._read_view = memoryview(bytearray(READ_AHEAD))
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._ended = False
        self._thread = threading.Thread(target=self._run, args=(recipients,), name="age-encrypt", daemon=True)
        self._thread.start()

    # the encryption thread's side: pyrage reads with read(n) and writes with write(b)
    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the source. pyrage asks for 8 KiB at a time; the source
        is read (and hashed) in reads of up to :data:`READ_AHEAD` bytes, whatever pg_dump's
        pipe holds, and served from there: one system call and one hash update for many
        of pyrage's reads."""
        if not self._ahead:
            count = self._source(self._read_view)
            read = self._read_view[:count]
            self._hasher.update(read)
            self.plaintext.size += count
            self._ahead = memoryview(bytes(read))
        count = len(self._ahead) if size < 0 else min(size, len(self._ahead))
        chunk = bytes(self._ahead[:count])
        self._ahead = self._ahead[count:]
        return chunk

    def write(self, data: bytes) -> int:
        self._put(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def _put(self, item: bytes | None) -> None:
        while not self._stopped.is_set():
            try:
                self._chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _run(self, recipients: Recipients) -> None:
        try:
            _pyrage().encrypt_io(self, self, list(recipients.keys))
            self.plaintext.sha256 = self._hasher.hexdigest()
        except BaseException as exc:  # handed to the reader
            self._error = exc
        try:
            self._put(None)
        except _Stopped:
            pass

    # the part reader's side
    def readinto(self, view: memoryview) -> int:
        while not self._pending:
            if self._ended:
                return 0
            item = self._chunks.get()
            if item is None:
                self._ended = True
                self._thread.join()
                if self._error is not None and not self._stopped.is_set():
                    error = self._error
                    if isinstance(error, DumpError):
                        raise error
                    raise DumpError(f"age encryption of the dump failed: {type(error).__name__}: {error}")
                return 0
            self._pending = memoryview(item)
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        """Stop the encryption thread (it ends at its next write); drop queued chunks."""
        self._stopped.set()
        try:
            while True:
                self._chunks.get_nowait()
        except queue.Empty:
            pass
        try:  # wake a reader waiting for the next chunk: the stream ends here
            self._chunks.put_nowait(None)
        except queue.Full:
            pass


def encrypt_bytes(data: bytes, recipients: Recipients) -> bytes:
    """A small object (the roles SQL) as an age file."""
    out = _BytesSink()
    _pyrage().encrypt_io(_BytesSource(data), out, list(recipients.keys))
    return b"".join(out.chunks)


def encrypt_file(path: Path, recipients: Recipients) -> Path:
    """``path`` encrypted to ``path.age`` (streamed); the plaintext file is removed."""
    target = path.with_name(path.name + AGE_SUFFIX)
    try:
        with open(path, "rb") as source, open(target, "wb") as sink:
            _pyrage().encrypt_io(source, sink, list(recipients.keys))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    path.unlink()
    return target


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)

    def read(self, size: int = -1) -> bytes:
        size = len(self._view) if size < 0 else size
        chunk, self._view = self._view[:size], self._view[size:]
        return bytes(chunk)


class _BytesSink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


# --------------------------------------------------------------------------- identities
def load_identities(path: str | None, recipients: Sequence[str], what: str) -> list[Any]:
    """The identities in an age identity file (``AGE-SECRET-KEY-1...`` lines, ``#``
    comments; what ``age-keygen`` writes) or an unencrypted OpenSSH private key file.
    No file, an unreadable one or one without a key: a :class:`RefusedError` (exit 8)
    naming the recipients ``what`` was encrypted to. Key material is never quoted."""
    pyrage = _pyrage()
    needed = ", ".join(recipients)
    hint = ("pass --identity FILE (env AGENT_BOM_RESTORE_IDENTITY_FILE) with the secret key of one of these "
            "recipients; `agent-bom-backup check --recipients` lists what each backup needs")
    if not path:
        raise RefusedError(f"{what} is encrypted to age recipients {needed} and no identity was given; "
                           "nothing was changed", hint=hint)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RefusedError(f"cannot read the age identity file {path}: {exc.strerror}; nothing was changed",
                           hint=hint) from None
    identities: list[Any] = []
    try:
        if b"-----BEGIN" in data:
            identities.append(pyrage.ssh.Identity.from_buffer(data))
        else:
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if not line.upper().startswith(_SECRET_PREFIX):
                    raise RefusedError(f"age identity file {path}: line {number} is not an age secret key "
                                       "(AGE-SECRET-KEY-1...); nothing was changed", hint=hint)
                identities.append(pyrage.x25519.Identity.from_str(line))
    except pyrage.IdentityError as exc:
        raise RefusedError(f"age identity file {path} holds no usable key ({_first_line(exc)}; encrypted SSH keys "
                           "are not supported); nothing was changed", hint=hint) from None
    if not identities:
        raise RefusedError(f"age identity file {path} holds no key; nothing was changed", hint=hint)
    return identities


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _no_match(exc: BaseException) -> bool:
    return _NO_MATCH in str(exc).lower()


def wrong_identity(path: str | None, recipients: Sequence[str], what: str) -> RefusedError:
    return RefusedError(
        f"the age identity in {path} matches none of the recipients {what} is encrypted to: "
        f"{', '.join(recipients)}; nothing was changed",
        hint="pass the identity file of one of these recipients (--identity / AGENT_BOM_RESTORE_IDENTITY_FILE); "
        "`agent-bom-backup check --recipients` lists what each backup needs",
    )


def decrypt_bytes(data: bytes, identities: list[Any], *, path: str | None, recipients: Sequence[str],
                  what: str, expect_sha256: str | None = None) -> bytes:
    """A small age object decrypted; a wrong identity is a refusal (exit 8), a corrupted
    ciphertext or a plaintext other than the manifest's a :class:`VerifyError` (exit 7)."""
    pyrage = _pyrage()
    out = _BytesSink()
    try:
        pyrage.decrypt_io(_BytesSource(data), out, identities)
    except pyrage.DecryptError as exc:
        if _no_match(exc):
            raise wrong_identity(path, recipients, what) from None
        raise VerifyError(f"{what} does not decrypt: {_first_line(exc)} (corrupted or truncated); nothing was "
                          "changed", hint="restore another backup") from None
    except OSError as exc:
        raise VerifyError(f"{what} does not decrypt: {_first_line(exc)} (corrupted or truncated); nothing was "
                          "changed", hint="restore another backup") from None
    plaintext = b"".join(out.chunks)
    if expect_sha256 and hashlib.sha256(plaintext).hexdigest() != expect_sha256:
        raise VerifyError(f"{what} decrypts to something other than what its manifest recorded (plaintext "
                          "SHA-256 differs); nothing was changed", hint="restore another backup")
    return plaintext


class _HashingWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()


@dataclass(frozen=True)
class Opening:
    """What opens an age object, and what to call it in an error: the ``identities`` loaded
    from the file ``path``, the ``recipients`` the object is encrypted to (named when none
    of the identities matches), and ``what`` the object is."""

    identities: list[Any]
    path: str | None
    recipients: Sequence[str]
    what: str


def decrypt_file(source: Path, target: Path, opening: Opening, *, expect_size: int | None,
                 expect_sha256: str | None) -> tuple[int, str]:
    """Decrypt the age file ``source`` into ``target`` (streamed) and check the
    plaintext's size and SHA-256 against the manifest. Any failure removes ``target``:
    pg_restore never sees a byte of a plaintext that did not check out."""
    pyrage = _pyrage()
    failure: BackupError | None = None
    what = opening.what
    try:
        with open(source, "rb") as handle, open(target, "wb") as sink:
            writer = _HashingWriter(sink)
            pyrage.decrypt_io(handle, writer, opening.identities)
    except pyrage.DecryptError as exc:
        failure = (wrong_identity(opening.path, opening.recipients, what) if _no_match(exc) else
                   _corrupt(what, exc))
    except OSError as exc:
        failure = _corrupt(what, exc)
    if failure is None:
        digest = writer.hasher.hexdigest()
        if expect_size is not None and writer.size != expect_size or expect_sha256 and digest != expect_sha256:
            failure = VerifyError(
                f"{what} decrypts to {writer.size} bytes with SHA-256 {digest[:12]}..., not the "
                f"{expect_size} bytes / {(expect_sha256 or '?')[:12]}... its manifest recorded; the target was not "
                "touched", hint="restore another backup")
    if failure is not None:
        target.unlink(missing_ok=True)
        raise failure
    return writer.size, writer.hasher.hexdigest()


def _corrupt(what: str, exc: BaseException) -> VerifyError:
    return VerifyError(f"{what} does not decrypt: {_first_line(exc)} (the ciphertext is corrupted or truncated); "
                       "pg_restore was not run and the target was not touched", hint="restore another backup")



# --------------------------------------------------------------------------- a backup's objects
def _encryption_of(manifest: Manifest) -> EncryptionRecord | None:
    encryption = manifest.encryption
    if encryption is not None and encryption.format != FORMAT:
        raise RefusedError(f"backup {manifest.backup_id} is encrypted as {encryption.format!r}, which this release "
                           "cannot decrypt; nothing was changed", hint="use the agent-bom-backup release that wrote it")
    return encryption


def require_identity(get_bytes: Callable[[str], bytes], manifest: Manifest, identity_file: str | None) -> None:
    """For an encrypted backup: refuse (exit 8, before any change) unless ``identity_file``
    opens it. The proof is decrypting the backup's roles object (a few KiB, encrypted to
    the same recipients as the dump) and checking its plaintext SHA-256."""
    encryption = _encryption_of(manifest)
    if encryption is None:
        return
    what = f"backup {manifest.backup_id}"
    identities = load_identities(identity_file, encryption.recipients, what)
    if manifest.roles is None:
        return  # the dump's own header decides, still before pg_restore (decrypt_dump)
    data = get_bytes(manifest.roles.key)
    if hashlib.sha256(data).hexdigest() != manifest.roles.sha256:
        raise VerifyError(f"the roles object of {what} does not match its manifest; nothing was changed",
                          hint="restore another backup")
    decrypt_bytes(data, identities, path=identity_file, recipients=encryption.recipients,
                  what=f"the roles object of {what}", expect_sha256=manifest.roles.plaintext_sha256)


def roles_plaintext(data: bytes, manifest: Manifest, identity_file: str | None) -> bytes:
    """The roles object's SQL: ``data`` itself, or decrypted when the backup is encrypted."""
    encryption = _encryption_of(manifest)
    if encryption is None or manifest.roles is None:
        return data
    what = f"the roles object of backup {manifest.backup_id}"
    identities = load_identities(identity_file, encryption.recipients, what)
    return decrypt_bytes(data, identities, path=identity_file, recipients=encryption.recipients, what=what,
                         expect_sha256=manifest.roles.plaintext_sha256)


def download_path(dump_path: Path, manifest: Manifest) -> Path:
    """Where the restore downloads the dump object: ``dump_path`` itself, or the age file
    next to it that :func:`decrypt_dump` decrypts into ``dump_path``."""
    return dump_path.with_name(dump_path.name + AGE_SUFFIX) if manifest.encryption is not None else dump_path


def decrypt_dump(downloaded: Path, dump_path: Path, manifest: Manifest, identity_file: str | None) -> None:
    """Decrypt the verified download into ``dump_path`` and check the plaintext against the
    manifest; the age file is removed either way (it was only scratch)."""
    encryption = _encryption_of(manifest)
    if encryption is None:
        return
    what = f"the dump of backup {manifest.backup_id}"
    try:
        identities = load_identities(identity_file, encryption.recipients, what)
        size, digest = decrypt_file(downloaded, dump_path,
                                    Opening(identities, identity_file, encryption.recipients, what),
                                    expect_size=manifest.dump.plaintext_size,
                                    expect_sha256=manifest.dump.plaintext_sha256)
    finally:
        downloaded.unlink(missing_ok=True)
    event(get_logger(), "dump decrypted and verified", bytes=size, sha256=digest)


def safety_backup_encrypted(path: Path, manifest: Manifest) -> Path:
    """A --clean safety dump encrypted to the restored backup's recipients when that backup
    was encrypted (``path.age``; the plaintext file is removed); else ``path`` unchanged."""
    encryption = _encryption_of(manifest)
    if encryption is None:
        return path
    return encrypt_file(path, Recipients.parse(encryption.recipients, option="the backup's recipients"))

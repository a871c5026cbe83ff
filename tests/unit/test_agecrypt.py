"""Client-side age encryption (agecrypt): recipients, the streaming encryptor between
pg_dump's pipe and the part reader, identities, and decryption that refuses to hand
pg_restore anything that did not check out."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pyrage
import pytest

from agent_bom_backup.agecrypt import (
    EncryptedStream,
    Opening,
    Recipients,
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    load_identities,
    require_identity,
)
from agent_bom_backup.errors import ConfigError, DumpError, RefusedError, VerifyError
from agent_bom_backup.manifest import ObjectRecord
from tests.unit.samples import manifest

SSH_ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust")


@pytest.fixture(scope="module")
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


@pytest.fixture
def identity_file(tmp_path: Path, identity: pyrage.x25519.Identity) -> Path:
    path = tmp_path / "key.txt"
    path.write_text(f"# created: by the test\n# public key: {identity.to_public()}\n{identity}\n")
    return path


def _recipients(*identities: pyrage.x25519.Identity) -> Recipients:
    return Recipients.parse([str(i.to_public()) for i in identities])


def test_x25519_and_ssh_recipients_parse(identity: pyrage.x25519.Identity) -> None:
    assert len(Recipients.parse([str(identity.to_public()), SSH_ED25519]).keys) == 2


def test_blank_lines_of_the_env_var_are_not_recipients(identity: pyrage.x25519.Identity) -> None:
    assert Recipients.parse(["", f"{identity.to_public()}", "  "]).strings == (str(identity.to_public()),)


@pytest.mark.parametrize("text", ["age1notbech32", "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "ssh-ed25519 AAAA",
                                  "gpg:0xDEADBEEF"], ids=["bad-bech32", "short", "ssh-truncated", "foreign"])
def test_a_malformed_recipient_is_a_configuration_error_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match="--encrypt-to: .*not (a valid )?an? age recipient|is not"):
        Recipients.parse([text])


def test_a_secret_key_given_as_recipient_is_refused_without_echoing_it(identity: pyrage.x25519.Identity) -> None:
    with pytest.raises(ConfigError) as caught:
        Recipients.parse([str(identity)])
    assert str(identity) not in str(caught.value) and "secret key" in str(caught.value)


def _pipe_source(data: bytes):  # noqa: ANN202 - a readinto like pg_dump's pipe: short reads
    stream = io.BytesIO(data)

    def readinto(view: memoryview) -> int:
        return stream.readinto(view[:5000])

    return readinto


def _drain(stream: EncryptedStream, size: int = 100_000) -> bytes:
    out = bytearray()
    buffer = bytearray(size)
    while True:
        with memoryview(buffer) as view:
            count = stream.readinto(view)
        if not count:
            return bytes(out)
        out += buffer[:count]


def test_the_stream_is_a_plain_age_file_of_the_source(identity: pyrage.x25519.Identity) -> None:
    data = os.urandom(300_000)
    ciphertext = _drain(EncryptedStream(_pipe_source(data), _recipients(identity)))
    assert ciphertext.startswith(b"age-encryption.org/v1\n") and pyrage.decrypt(ciphertext, [identity]) == data


def test_the_stream_records_the_plaintext_digest(identity: pyrage.x25519.Identity) -> None:
    data = os.urandom(70_000)
    stream = EncryptedStream(_pipe_source(data), _recipients(identity))
    _drain(stream)
    assert (stream.plaintext.size, stream.plaintext.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_every_recipient_can_decrypt(identity: pyrage.x25519.Identity) -> None:
    other = pyrage.x25519.Identity.generate()
    ciphertext = _drain(EncryptedStream(_pipe_source(b"x" * 1000), _recipients(identity, other)))
    assert pyrage.decrypt(ciphertext, [other]) == b"x" * 1000


def test_an_empty_source_is_still_an_age_file(identity: pyrage.x25519.Identity) -> None:
    assert pyrage.decrypt(_drain(EncryptedStream(_pipe_source(b""), _recipients(identity))), [identity]) == b""


def test_a_failing_source_fails_the_stream(identity: pyrage.x25519.Identity) -> None:
    def broken(view: memoryview) -> int:
        raise OSError("pipe broke")

    with pytest.raises(DumpError, match="age encryption of the dump failed"):
        _drain(EncryptedStream(broken, _recipients(identity)))


def test_close_stops_a_stream_nobody_reads(identity: pyrage.x25519.Identity) -> None:
    stream = EncryptedStream(lambda view: len(view), _recipients(identity))  # an endless source
    stream.close()
    stream._thread.join(timeout=30)
    assert not stream._thread.is_alive()


def test_an_identity_file_reads_as_age_keygen_writes_it(identity_file: Path) -> None:
    assert len(load_identities(str(identity_file), ["age1x"], "backup b")) == 1


def test_no_identity_is_a_refusal_naming_the_recipients() -> None:
    with pytest.raises(RefusedError, match="encrypted to age recipients age1x, age1y and no identity"):
        load_identities(None, ["age1x", "age1y"], "backup b")


def test_an_identity_file_line_that_is_no_key_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text("AGE-SECRET-KEY-1ABC\nsecret-looking-words\n")
    with pytest.raises(RefusedError) as caught:
        load_identities(str(path), ["age1x"], "backup b")
    assert "secret-looking-words" not in str(caught.value) and "AGE-SECRET-KEY-1ABC" not in str(caught.value)


def test_a_wrong_identity_is_a_refusal_naming_the_recipients(identity: pyrage.x25519.Identity) -> None:
    ciphertext = encrypt_bytes(b"roles", _recipients(identity))
    wrong = [pyrage.x25519.Identity.generate()]
    with pytest.raises(RefusedError, match=f"matches none of the recipients .*: {identity.to_public()}"):
        decrypt_bytes(ciphertext, wrong, path="k.txt", recipients=[str(identity.to_public())], what="roles")


def test_a_truncated_small_object_fails_to_decrypt(identity: pyrage.x25519.Identity) -> None:
    ciphertext = encrypt_bytes(b"roles" * 100, _recipients(identity))
    with pytest.raises(VerifyError, match="does not decrypt"):
        decrypt_bytes(ciphertext[:-10], [identity], path="k", recipients=["r"], what="roles")


def _encrypted_file(tmp_path: Path, identity: pyrage.x25519.Identity, data: bytes) -> Path:
    plain = tmp_path / "x.dump"
    plain.write_bytes(data)
    return encrypt_file(plain, _recipients(identity))


def test_encrypt_file_removes_the_plaintext(tmp_path: Path, identity: pyrage.x25519.Identity) -> None:
    encrypted = _encrypted_file(tmp_path, identity, b"dump")
    assert (encrypted.name, sorted(p.name for p in tmp_path.iterdir())) == ("x.dump.age", ["x.dump.age"])


def test_decrypt_file_checks_the_plaintext_digest(tmp_path: Path, identity: pyrage.x25519.Identity) -> None:
    data = os.urandom(200_000)
    encrypted = _encrypted_file(tmp_path, identity, data)
    size, digest = decrypt_file(encrypted, tmp_path / "out.dump", Opening([identity], "k", ["r"], "dump"),
                                expect_size=len(data), expect_sha256=hashlib.sha256(data).hexdigest())
    assert (size, digest, (tmp_path / "out.dump").read_bytes() == data) == (len(data), hashlib.sha256(data).hexdigest(), True)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_ciphertext_leaves_no_plaintext_behind(tmp_path: Path, identity: pyrage.x25519.Identity,
                                                        damage: str) -> None:
    encrypted = _encrypted_file(tmp_path, identity, os.urandom(200_000))
    body = bytearray(encrypted.read_bytes())
    if damage == "truncate":
        del body[-70_000:]
    else:
        body[100_000] ^= 1
    encrypted.write_bytes(bytes(body))
    with pytest.raises(VerifyError, match="pg_restore was not run"):
        decrypt_file(encrypted, tmp_path / "out.dump", Opening([identity], "k", ["r"], "dump"),
                     expect_size=None, expect_sha256=None)
    assert not (tmp_path / "out.dump").exists()


def test_a_plaintext_other_than_the_manifest_s_is_refused(tmp_path: Path, identity: pyrage.x25519.Identity) -> None:
    encrypted = _encrypted_file(tmp_path, identity, b"a dump an attacker holding the recipient wrote")
    with pytest.raises(VerifyError, match="not the .* its manifest recorded"):
        decrypt_file(encrypted, tmp_path / "out.dump", Opening([identity], "k", ["r"], "dump"),
                     expect_size=None, expect_sha256="0" * 64)
    assert not (tmp_path / "out.dump").exists()


def _encrypted_manifest(identity: pyrage.x25519.Identity, roles_ciphertext: bytes, plain: bytes):  # noqa: ANN202
    found = manifest(2, encryption={"format": "age", "recipients": [str(identity.to_public())]})
    assert found.roles is not None
    found.roles = ObjectRecord(found.roles.key, len(roles_ciphertext), hashlib.sha256(roles_ciphertext).hexdigest(),
                               plaintext_size=len(plain), plaintext_sha256=hashlib.sha256(plain).hexdigest())
    return found


def test_require_identity_passes_the_right_identity(identity: pyrage.x25519.Identity, identity_file: Path) -> None:
    ciphertext = encrypt_bytes(b"CREATE ROLE app;", _recipients(identity))
    found = _encrypted_manifest(identity, ciphertext, b"CREATE ROLE app;")
    require_identity(lambda key: ciphertext, found, str(identity_file))


def test_require_identity_refuses_another_identity(identity: pyrage.x25519.Identity, tmp_path: Path) -> None:
    ciphertext = encrypt_bytes(b"CREATE ROLE app;", _recipients(identity))
    found = _encrypted_manifest(identity, ciphertext, b"CREATE ROLE app;")
    other = tmp_path / "other.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    with pytest.raises(RefusedError, match=str(identity.to_public())):
        require_identity(lambda key: ciphertext, found, str(other))


def test_require_identity_asks_nothing_of_an_unencrypted_backup() -> None:
    require_identity(lambda key: pytest.fail("read an object"), manifest(2), None)


def test_an_encrypted_stream_fills_growing_parts_whose_concatenation_decrypts(identity: pyrage.x25519.Identity) -> None:
    """The backup's path: pg_dump's pipe -> age -> the part reader's 5, 10, ... MiB buffers;
    the parts, uploaded in order, are one age file of the whole dump, hashed as stored."""
    from agent_bom_backup.parts import PartReader, PartSchedule, UploadPlan, fill_with
    from agent_bom_backup.resources import MemoryBudget

    data = os.urandom(16 * 1024 * 1024)  # with age's overhead: parts of 5, 10 and ~1 MiB
    stream = EncryptedStream(_pipe_source(data), _recipients(identity))
    plan = UploadPlan(PartSchedule(5 * 1024 * 1024, 1), 1, MemoryBudget(256 * 1024 * 1024, "test"))
    reader = PartReader(plan, fill_with(readinto=stream.readinto))
    parts = []
    for part in reader:
        parts.append(bytes(part.data))
        reader.buffers.give_back(part.data, part.size)
    stored = b"".join(parts)
    assert ([len(p) for p in parts[:2]], len(parts), reader.hasher.hexdigest(),
            pyrage.decrypt(stored, [identity]) == data) == (
        [5 * 1024 * 1024, 10 * 1024 * 1024], 3, hashlib.sha256(stored).hexdigest(), True)

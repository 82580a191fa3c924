import pytest

from signaling.vault import CHUNK, Vault, VaultError, load_master_key


@pytest.fixture
def vault(tmp_path) -> Vault:
    return Vault(load_master_key(tmp_path))


def test_seal_open_round_trip(vault: Vault) -> None:
    sealed = vault.seal(b"ERIKA MUSTERMANN", "case-1")
    assert b"MUSTERMANN" not in sealed
    assert vault.open(sealed, "case-1") == b"ERIKA MUSTERMANN"


def test_open_with_other_context_fails(vault: Vault) -> None:
    sealed = vault.seal(b"secret", "case-1")
    with pytest.raises(VaultError, match="record for 'case-2' does not authenticate"):
        vault.open(sealed, "case-2")


def test_stream_round_trip_many_chunks(vault: Vault, tmp_path) -> None:
    data = bytes(range(256)) * (3 * CHUNK // 256 + 17)
    path = tmp_path / "rec.enc"
    with vault.writer(path, "rec") as out:
        for i in range(0, len(data), 1000):
            out.write(data[i : i + 1000])
    assert data[:4096] not in path.read_bytes()
    assert vault.read_file(path, "rec") == data


def test_stream_truncation_is_detected(vault: Vault, tmp_path) -> None:
    path = tmp_path / "rec.enc"
    vault.write_file(path, b"x" * (2 * CHUNK + 5), "rec")
    raw = path.read_bytes()
    path.write_bytes(raw[: 4 + 7 + CHUNK + 16])  # drop everything after chunk 0
    with pytest.raises(VaultError, match="chunk 0 does not authenticate"):
        vault.read_file(path, "rec")


def test_stream_tampering_is_detected(vault: Vault, tmp_path) -> None:
    path = tmp_path / "rec.enc"
    vault.write_file(path, b"y" * 1000, "rec")
    raw = bytearray(path.read_bytes())
    raw[20] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(VaultError):
        vault.read_file(path, "rec")


def test_master_key_is_kept_between_starts(tmp_path) -> None:
    first = load_master_key(tmp_path)
    assert load_master_key(tmp_path) == first
    assert (tmp_path / "keys" / "master.key").stat().st_mode & 0o777 == 0o600

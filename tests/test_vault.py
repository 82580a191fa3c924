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
    path.write_bytes(raw[: 4 + 7 + 4 + CHUNK + 16])  # only chunk 0 is left
    with pytest.raises(VaultError, match="is cut off after chunk 0"):
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


def test_salvage_reads_a_stream_whose_writer_died(vault: Vault, tmp_path) -> None:
    path = tmp_path / "rec.enc"
    data = b"z" * (2 * CHUNK + 100)
    writer = vault.writer(path, "rec")
    writer.write(data)  # two full chunks reach the file, the rest is in memory
    # the process dies here: close() never runs, the OS closes the file
    writer._out.close()
    with pytest.raises(VaultError, match="is cut off after chunk 1"):
        vault.read_file(path, "rec")
    reader = vault.salvage(path, "rec")
    assert b"".join(reader) == data[: 2 * CHUNK]
    assert reader.truncated is True


def test_writer_flushes_a_slow_stream_within_a_second(
    vault: Vault, tmp_path, monkeypatch
) -> None:
    import signaling.vault as module

    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    path = tmp_path / "rec.enc"
    writer = vault.writer(path, "rec")
    writer.write(b"header")
    now[0] += 1.5
    writer.write(b"frame")  # a small recording still reaches the disk
    writer._out.close()
    reader = vault.salvage(path, "rec")
    assert b"".join(reader) == b"headerframe"
    assert reader.truncated


def test_salvage_drops_a_partly_written_chunk(vault: Vault, tmp_path) -> None:
    path = tmp_path / "rec.enc"
    vault.write_file(path, b"q" * (CHUNK + 10), "rec")
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])  # the final chunk was cut while being written
    reader = vault.salvage(path, "rec")
    assert b"".join(reader) == b"q" * CHUNK
    assert reader.truncated


def test_salvage_of_a_whole_stream_is_not_truncated(vault: Vault, tmp_path) -> None:
    path = tmp_path / "rec.enc"
    vault.write_file(path, b"w" * 1000, "rec")
    reader = vault.salvage(path, "rec")
    assert b"".join(reader) == b"w" * 1000
    assert reader.truncated is False


def test_salvage_still_detects_tampering_in_the_middle(vault: Vault, tmp_path) -> None:
    path = tmp_path / "rec.enc"
    vault.write_file(path, b"e" * (3 * CHUNK), "rec")
    raw = bytearray(path.read_bytes())
    raw[4 + 7 + 4 + 10] ^= 1  # inside chunk 0
    path.write_bytes(bytes(raw))
    with pytest.raises(VaultError, match="chunk 0 does not authenticate"):
        b"".join(vault.salvage(path, "rec"))

from datetime import UTC, datetime

import pytest

from signaling.config import ServiceHours


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    # December: Berlin is UTC+1
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_service_hours_open_inside_berlin_hours() -> None:
    hours = ServiceHours()
    assert hours.is_open(at(5, 0))  # 06:00 Berlin
    assert hours.is_open(at(20, 59))  # 21:59 Berlin
    assert not hours.is_open(at(4, 59))  # 05:59 Berlin
    assert not hours.is_open(at(21, 0))  # 22:00 Berlin


def test_service_hours_next_opening_after_closing_is_next_morning() -> None:
    opens = ServiceHours().next_opening(at(22, 30))
    assert opens.isoformat() == "2026-12-03T06:00:00+01:00"


def test_service_hours_next_opening_before_opening_is_same_morning() -> None:
    opens = ServiceHours().next_opening(at(3, 0))
    assert opens.isoformat() == "2026-12-02T06:00:00+01:00"


def test_service_hours_parse_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="are not of the form HH:MM-HH:MM"):
        ServiceHours.parse("six to ten")
    with pytest.raises(ValueError, match="close before they open"):
        ServiceHours.parse("22:00-06:00")
    assert ServiceHours.parse("always").is_open(at(2, 0))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("IDENTDESK_PORT", "abc", "IDENTDESK_PORT='abc' is not a number"),
        ("IDENTDESK_MEDIA_WORKERS", "-2", "media workers '-2': give a number"),
        ("IDENTDESK_SERVICE_HOURS", "late", "service hours 'late' are not of"),
        ("IDENTDESK_PORT", "99999", "IDENTDESK_PORT=99999 is not a port"),
        ("IDENTDESK_TIMEZONE", "Mars/Base", "IDENTDESK_TIMEZONE='Mars/Base' is not"),
        ("IDENTDESK_MEDIA_WORKERS", "1000", "media workers '1000': at most"),
        ("IDENTDESK_MAX_CALLS", "0", "IDENTDESK_MAX_CALLS='0': give a whole"),
        ("IDENTDESK_TAN_TTL_HOURS", "0", "IDENTDESK_TAN_TTL_HOURS=0: a number must"),
        ("IDENTDESK_SMTP_URL", "ftp://x", "IDENTDESK_SMTP_URL must start with"),
        (
            "IDENTDESK_TLS_CERT",
            "/nonexistent",
            "IDENTDESK_TLS_CERT and IDENTDESK_TLS_KEY",
        ),
    ],
)
def test_serve_refuses_an_invalid_setting_in_one_line(
    tmp_path, variable: str, value: str, message: str
) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "identdesk.cli", "serve", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: invalid setting: {message}")
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())  # nothing was created


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_refuses_a_port_flag_out_of_range_in_one_line(tmp_path, port) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "identdesk.cli", "serve", "--port", port]
        + ["--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"error: invalid setting: --port {port} is not a port (1-65535)\n"
    )
    assert not list(tmp_path.iterdir())  # nothing was created or started

"""How fast the ISMG simulator answers: SUBMIT_RESP/s and status reports/s.

Starts ``twist cmppsim`` in a child process on a free 127.0.0.1 port, then blasts
SUBMITs (each asking for a report) at it from this process with a raw-socket
load generator: precomputed frames, one ``struct`` header read per received PDU,
DELIVER_RESPs batched. The generator does less work per message than the
simulator, and both CPU times are printed, so the figure is the simulator's.

    .venv/bin/python -m bench.simulator [--count 200000] [--seconds 20]
        [--version 20|30] [--window 4096] [--report-delay 0.1]

Bounded in count and time; connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cpu_model

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = b"100002"
PASSWORD = b"bench-secret"
TIMESTAMP = 1203153045

HEADER = struct.Struct(">III")
SEQ = struct.Struct(">I")
SUBMIT_RESP = 0x80000004
DELIVER = 0x00000005
CONNECT_RESP = 0x80000001


def submit_template(version: int) -> tuple[bytes, bytes]:
    """The SUBMIT frame around its Sequence_Id: (length + command, body)."""
    v30 = version >= 0x30
    terminal = 32 if v30 else 21
    content = "bench message".encode("utf-16-be")
    body = struct.pack(">QBBBB10sB", 0, 1, 1, 1, 0, b"MXX0001", 2)
    body += bytes(terminal)  # Fee_terminal_Id
    if v30:
        body += b"\0"  # Fee_terminal_type
    body += struct.pack(">BBB6s2s6s17s17s21sB", 0, 0, 8, ACCOUNT, b"01", b"000000",
                        b"", b"", b"10658012", 1)  # fmt: skip
    body += b"13800138000".ljust(terminal, b"\0")
    if v30:
        body += b"\0"  # Dest_terminal_type
    body += bytes([len(content)]) + content + bytes(20 if v30 else 8)
    return struct.pack(">II", 12 + len(body), 4), body


def connect_frame(version: int) -> bytes:
    """A CONNECT for the bench account."""
    digest = hashlib.md5(
        ACCOUNT + bytes(9) + PASSWORD + b"%010d" % TIMESTAMP, usedforsecurity=False
    ).digest()
    return (
        HEADER.pack(39, 1, 1)
        + ACCOUNT
        + digest
        + struct.pack(">BI", version, TIMESTAMP)
    )


def start_simulator(arguments: argparse.Namespace, port_file: Path) -> subprocess.Popen:
    """``twist cmppsim`` on a free loopback port; waits for its port file."""
    command = [
        sys.executable, "-m", "twisted", "--log-level", "warn", "cmppsim",
        "--listen", "tcp:0:interface=127.0.0.1", "--port-file", str(port_file),
        "--account", f"{ACCOUNT.decode()}:{PASSWORD.decode()}",
        "--report-delay", str(arguments.report_delay),
    ]  # fmt: skip
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not (port_file.exists() and port_file.read_text().strip()):
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise SystemExit("bench: the simulator did not start")
        time.sleep(0.05)
    return child


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def blast(port: int, arguments: argparse.Namespace) -> dict[str, float]:
    """Log in, pipeline the SUBMITs under the window, read every answer."""
    version = arguments.version
    deliver_resp_tail = b"\0\0\0\0" if version >= 0x30 else b"\0"
    deliver_resp_length = 24 if version >= 0x30 else 21
    prefix, body = submit_template(version)
    count, window, chunk = arguments.count, arguments.window, 512

    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sendall(connect_frame(version))
    answer = connection.recv(64)
    _, command, _ = HEADER.unpack_from(answer)
    status = answer[12] if version < 0x30 else int.from_bytes(answer[12:16])
    if command != CONNECT_RESP or status != 0:
        raise SystemExit(f"bench: login refused: {answer.hex()}")

    sent = responses = reports = refused = 0
    seq = 1
    buffer = b""
    started = time.perf_counter()
    deadline = started + arguments.seconds
    last_response = last_report = started
    unpack = HEADER.unpack_from
    pack_header = HEADER.pack
    while responses < count or reports < responses - refused:
        now = time.perf_counter()
        if now > deadline:
            break
        if sent < count and sent - responses < window:
            size = min(chunk, count - sent, window - (sent - responses))
            frames = []
            for _ in range(size):
                seq += 1
                frames.append(prefix + SEQ.pack(seq) + body)
            connection.sendall(b"".join(frames))
            sent += size
            flags = socket.MSG_DONTWAIT
        else:
            flags = 0
        try:
            data = connection.recv(1 << 20, flags)
        except BlockingIOError:
            continue
        if not data:
            break

        buffer = buffer + data if buffer else data
        offset, end, answers = 0, len(buffer), []
        got_response = got_report = False
        while end - offset >= 12:
            length, command, frame_seq = unpack(buffer, offset)
            if end - offset < length:
                break
            if command == SUBMIT_RESP:
                responses += 1
                got_response = True
                if buffer[offset + length - 1]:
                    refused += 1
            elif command == DELIVER:
                reports += 1
                got_report = True
                answers.append(
                    pack_header(deliver_resp_length, 0x80000005, frame_seq)
                    + buffer[offset + 12 : offset + 20]
                    + deliver_resp_tail
                )
            offset += length
        buffer = buffer[offset:]
        if answers:
            connection.sendall(b"".join(answers))
        if got_response:
            last_response = time.perf_counter()
        if got_report:
            last_report = time.perf_counter()

    connection.close()
    return {
        "sent": sent,
        "responses": responses,
        "refused": refused,
        "reports": reports,
        "response_seconds": last_response - started,
        "report_seconds": last_report - started,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--version", type=lambda text: int(text, 16), default=0x20)
    parser.add_argument("--window", type=int, default=4096)
    parser.add_argument("--report-delay", type=float, default=0.1)
    arguments = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as directory:
        child = start_simulator(arguments, Path(directory) / "port")
        try:
            port = int((Path(directory) / "port").read_text())
            simulator_before = cpu_seconds(child.pid)
            generator_before = time.process_time()
            figures = blast(port, arguments)
            simulator_cpu = cpu_seconds(child.pid) - simulator_before
            generator_cpu = time.process_time() - generator_before
        finally:
            child.terminate()
            child.wait(timeout=10)

    responses, reports = figures["responses"], figures["reports"]
    print("ISMG simulator bench (twist cmppsim, raw-socket load generator)")
    print(f"  Python {platform.python_version()}, {cpu_model()}, {os.cpu_count()} CPUs")
    print(
        f"  CMPP {arguments.version >> 4}.{arguments.version & 0xF}, window "
        f"{arguments.window}, report delay {arguments.report_delay} s, "
        f"{figures['sent']} SUBMITs sent (limit {arguments.count} / "
        f"{arguments.seconds:g} s)"
    )
    print(
        f"  SUBMIT_RESP: {responses} in {figures['response_seconds']:.2f} s = "
        f"{responses / max(figures['response_seconds'], 1e-9):,.0f}/s "
        f"({figures['refused']} refused)"
    )
    print(
        f"  reports:     {reports} in {figures['report_seconds']:.2f} s = "
        f"{reports / max(figures['report_seconds'], 1e-9):,.0f}/s"
    )
    per_message = 1e6 / max(responses, 1)
    print(
        f"  CPU: simulator {simulator_cpu:.2f} s ({simulator_cpu * per_message:.1f} "
        f"us/submit incl. its report), load generator {generator_cpu:.2f} s "
        f"({generator_cpu * per_message:.1f} us/submit)"
    )


if __name__ == "__main__":
    main()

"""python -m simulators payments|catalog|notify [--host H] [--port P] [--seed N] [--config file.json]"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import uvicorn
from pydantic import ValidationError

from simulators.server import DEFAULT_PORTS, SIMULATORS, build, uvicorn_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators", description="Run one provider simulator.")
    parser.add_argument("provider", choices=sorted(SIMULATORS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default: payments 9101, catalog 9102, notify 9103")
    parser.add_argument("--seed", type=int, help="seed for every random decision (overrides the config file's)")
    parser.add_argument("--config", type=Path, help="a JSON file with the simulator's configuration")
    arguments = parser.parse_args(argv)
    config = json.loads(arguments.config.read_text()) if arguments.config else {}
    if arguments.seed is not None:
        config["seed"] = arguments.seed
    try:
        simulator = build(arguments.provider, config)
    except ValidationError as error:
        sys.stderr.write(f"invalid simulator configuration: {error}\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    port = arguments.port if arguments.port is not None else DEFAULT_PORTS[arguments.provider]
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting 0 instead tells supervisors all went well.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn.Server(uvicorn_config(simulator, arguments.host, port)).run()
    except KeyboardInterrupt:
        return 0
    return 0


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m scaler.compat.ray PROGRAM.py [--address tcp://HOST:PORT] [--shim] [program args]``.

Runs an unchanged Ray program on Scaler: with Ray installed, Ray is imported and patched; without
it (or with ``--shim``, or ``SCALER_RAY_SHIM=1``), ``import ray`` gives the compat API, and so it
does in the tasks of a local cluster the program starts. ``--address`` makes the program's
``ray.init()`` connect to that scheduler instead of starting a local cluster.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
import traceback


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scaler.compat.ray", description=__doc__)
    parser.add_argument("--address", default=None, help="tcp://HOST:PORT of a running scaler_scheduler")
    parser.add_argument("--shim", action="store_true", help="use the compat API even if Ray is installed")
    parser.add_argument("program", help="the Ray program to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the program")
    options = parser.parse_args(argv)
    if options.address:
        os.environ["SCALER_ADDRESS"] = options.address
    from scaler.compat.ray.patch import install_shim, shim_forced

    if options.shim or shim_forced():
        install_shim()
    else:
        try:
            import ray  # noqa: F401
        except ImportError:
            install_shim()
        from scaler.compat.ray.patch import patch_installed_ray

        patch_installed_ray()
    from scaler.compat.ray.session import shutdown

    sys.argv = [options.program, *options.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(options.program)))
    try:
        runpy.run_path(options.program, run_name="__main__")
    except KeyboardInterrupt:  # end as `python program.py` does on Ctrl-C: by SIGINT, so callers see 130
        traceback.print_exc()
        shutdown()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        raise
    finally:
        shutdown()


if __name__ == "__main__":
    main()

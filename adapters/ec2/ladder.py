"""The fallback ladder: the cells (market x instance type x subnet) a group's units are launched in, in order.

Each unit is tried in the first cell not cooling down. A capacity error (no instances of that type
in that zone now) cools that cell down for ``cooldown`` seconds and moves the unit to the next cell;
any other error stops the launch: a quota, throttling, auth or configuration error would be the same
in the next cell. Units launched before the stop are not lost: they come back inside a
``PartialLaunchError`` whose ``cause`` is the error's class. With every cell out of capacity the launch
raises ``CapacityError`` (or a partial launch whose cause it is), and the runner backs the group off.

This module knows nothing of boto3: ``run`` launches one unit in one cell, ``classify`` says which of
our error classes an exception is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scaler.adapters.ec2.spec import Ec2Group
from scaler.adapters.errors import CapacityError, PartialLaunchError, ProviderError
from scaler.adapters.provider import Unit

MARKETS = {"spot": ("spot",), "on-demand": ("on-demand",), "spot-then-on-demand": ("spot", "on-demand")}


@dataclass(frozen=True)
class Cell:
    market: str  # "spot" or "on-demand"
    instance_type: str  # "" = the launch template's
    subnet: str  # "" = EC2's (or the launch template's) choice

    def __str__(self) -> str:
        return f"{self.instance_type or 'template type'}/{self.subnet or 'any subnet'}/{self.market}"


def cells(group: Ec2Group) -> list[Cell]:
    """The group's cells in the order they are tried: market, then instance type, then subnet."""
    return [
        Cell(market, instance_type, subnet)
        for market in MARKETS[group.market]
        for instance_type in group.instance_types or ("",)
        for subnet in group.subnets or ("",)
    ]


class Ladder:
    """Launches units cell by cell; remembers, per provider object, which cells are cooling down."""

    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.clock = clock
        self.cool_until: dict[Cell, float] = {}

    def open_cells(self, ladder: Iterable[Cell]) -> list[Cell]:
        now = self.clock()
        return [cell for cell in ladder if self.cool_until.get(cell, 0.0) <= now]

    def launch(
        self,
        ladder: list[Cell],
        unit_ids: list[str],
        run: Callable[[Cell, str], Unit],
        classify: Callable[[BaseException], type[ProviderError]],
        already: Iterable[Unit] = (),
    ) -> list[Unit]:
        """Each of ``unit_ids`` launched by ``run`` in the first open cell that has capacity; ``already``
        (units of this request found launched) are part of the result, and of a partial launch's."""
        got = list(already)
        for unit_id in unit_ids:
            failures: list[str] = []
            for cell in self.open_cells(ladder):
                try:
                    got.append(run(cell, unit_id))
                    break
                except Exception as exc:
                    kind = type(exc) if isinstance(exc, ProviderError) else classify(exc)
                    error = kind(f"launch in {cell}: {type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    if kind is not CapacityError:
                        raise (PartialLaunchError(got, error) if got else error) from exc
                    self.cool_until[cell] = self.clock() + self.cooldown
                    failures.append(str(cell))
            else:
                tried = ", ".join(failures) or "none (all cooling down)"
                error = CapacityError(f"no capacity in any cell of the ladder; tried {tried}")
                raise PartialLaunchError(got, error) if got else error
        return got

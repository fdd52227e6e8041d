"""Settings read at run time from an .ini file in the working directory."""

import configparser
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    regions: tuple
    orders_per_region: int
    mean_order_value: float
    seed: int
    large_order_threshold: float


def load(path):
    # configparser.read() skips a missing file silently and fails later with a KeyError far
    # from the cause; say which file is missing, and from where it was looked up.
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found in {os.getcwd()}: ship its folder with the application"
        )
    parser = configparser.ConfigParser()
    parser.read(path)
    section = parser["report"]
    return Settings(
        regions=tuple(r.strip() for r in section["regions"].split(",")),
        orders_per_region=section.getint("orders_per_region"),
        mean_order_value=section.getfloat("mean_order_value"),
        seed=section.getint("seed"),
        large_order_threshold=section.getfloat("large_order_threshold"),
    )

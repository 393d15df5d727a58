"""Registry of the synthetic world families: ``SynthConfig.world`` names one of them."""

from __future__ import annotations

from pipeline.data.synth.worlds import critters, default, robots, townsfolk
from pipeline.data.synth.worlds.base import World
from pipeline.errors import ConfigError

# "default" is the original benchmark (byte for byte); the others differ procedurally in body
# plan, garments and their textures, accessories, palettes, backgrounds, camera motion and motion
# vocabulary, so that privacy claims can be checked on worlds a method was not tuned on.
WORLDS: dict[str, World] = {
    w.name: w for w in (default.WORLD, robots.WORLD, critters.WORLD, townsfolk.WORLD)
}
WORLD_NAMES: tuple[str, ...] = tuple(WORLDS)


def get_world(name: str) -> World:
    """The world called ``name`` (ConfigError listing the names otherwise)."""
    try:
        return WORLDS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown synth world {name!r}; expected one of {', '.join(WORLD_NAMES)}"
        ) from None


__all__ = ["WORLDS", "WORLD_NAMES", "World", "get_world"]

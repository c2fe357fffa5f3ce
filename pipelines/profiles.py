"""Compile profiles: the component image and the tuning task's resources, chosen at compile time.

Standard library only; nothing here reads the environment. ``local`` reproduces the committed
``compiled/adapter_tuning.yaml`` that the local runner executes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from components.images import IMAGE as CPU_IMAGE

CUDA_IMAGE = f"{CPU_IMAGE}-cuda"


@dataclass(frozen=True)
class Profile:
    """Where and on what the compiled pipeline's tasks run.

    Attributes:
        name: Profile name, as given to ``--profile``.
        image: Container image every component runs in.
        accelerator_type: Accelerator of the tuning task (e.g. NVIDIA_L4); empty for none.
        accelerator_count: Number of accelerators of the tuning task.
        cpu_limit: CPU limit of the tuning task (e.g. "8"); empty for the platform default.
        memory_limit: Memory limit of the tuning task (e.g. "32G"); empty for the default.
    """

    name: str
    image: str
    accelerator_type: str = ""
    accelerator_count: int = 0
    cpu_limit: str = ""
    memory_limit: str = ""

    def __post_init__(self) -> None:
        if not self.image:
            raise ValueError(f"profile {self.name!r}: image must not be empty")
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise ValueError(
                f"profile {self.name!r}: give both accelerator_type and accelerator_count > 0, "
                "or neither"
            )

    def with_image(self, image: str | None) -> Profile:
        """Return this profile with another image (unchanged when ``image`` is empty)."""
        return replace(self, image=image) if image else self


PROFILES = {
    "local": Profile(name="local", image=CPU_IMAGE),
    "vertex-cpu": Profile(name="vertex-cpu", image=CPU_IMAGE, cpu_limit="8", memory_limit="32G"),
    "vertex-gpu": Profile(
        name="vertex-gpu",
        image=CUDA_IMAGE,
        accelerator_type="NVIDIA_L4",
        accelerator_count=1,
        cpu_limit="8",
        memory_limit="32G",
    ),
}
DEFAULT_PROFILE = "local"


def get_profile(name: str, image: str | None = None) -> Profile:
    """Return the named profile, with ``image`` replacing its image when given.

    Raises:
        ValueError: If no profile has that name.
    """
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {sorted(PROFILES)}") from None
    return profile.with_image(image)

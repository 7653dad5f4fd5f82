"""The servers kgcelery starts itself: ``open_stack`` picks them by ``KGCELERY_STACK``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kgcelery.embedded.stack import EmbeddedStack
    from kgcelery.settings import Settings


def open_stack(settings: Settings, *, create_topics: bool = True) -> EmbeddedStack:
    """The stack that ``settings.stack`` names, not started yet."""
    if settings.stack == "kafka-neo4j":
        from kgcelery.embedded.jvm_stack import JvmStack

        return JvmStack(settings, create_topics=create_topics)
    from kgcelery.embedded.stack import EmbeddedStack

    return EmbeddedStack(settings, create_topics=create_topics)

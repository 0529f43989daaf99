"""A local emulator of HeyGen's video endpoints, with seeded fault injection."""

from engine.sandbox.app import create_app
from engine.sandbox.config import SandboxConfig
from engine.sandbox.runner import RunningSandbox, running_sandbox, serve_forever
from engine.sandbox.state import SandboxState

__all__ = [
    "RunningSandbox",
    "SandboxConfig",
    "SandboxState",
    "create_app",
    "running_sandbox",
    "serve_forever",
]

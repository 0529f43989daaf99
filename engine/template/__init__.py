"""Step 2: a template shaped like a V2 body, with ``{{ column }}`` placeholders."""

from engine.template.compile import Template, compile_template
from engine.template.load import load_template

__all__ = ["Template", "compile_template", "load_template"]

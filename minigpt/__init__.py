"""minigpt: the package behind the course, from n-gram counts to a GPT."""

__version__ = "0.1.0"

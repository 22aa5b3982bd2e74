"""ftm's application layer: use-cases, the CLI and the Textual TUI."""

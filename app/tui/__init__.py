"""The Textual face of ftm. Screens and widgets only; logic lives in app/ use-cases."""

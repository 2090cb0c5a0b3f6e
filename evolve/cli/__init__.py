"""The terminal interface: typer commands, live progress and rich views. Top layer: may import any."""

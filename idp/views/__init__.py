"""User-facing blueprints, one per flow."""

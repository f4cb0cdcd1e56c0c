"""The first-run setup dialog: dependencies, the model catalogue, advanced model actions."""

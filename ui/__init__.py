"""Layouts of the plugin's widgets."""

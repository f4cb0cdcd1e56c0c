"""Canvas items, prompts, parameters, dialogs and the controller of the plugin."""

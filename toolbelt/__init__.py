"""Qt-side helpers of the plugin: metadata, settings, logging."""

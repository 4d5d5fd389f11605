"""The built-in driving plugin: sensor-fusion route/path planning and adaptive cruise."""

"""The bottom layer: errors, configuration, atomic files, the device and process runtime."""

"""HTTP adapters: each dialect parses its wire format, calls TokenService, renders its answer."""

"""How masks are found, one module per way, behind one registry of modes (`ltjax.methods.modes`)."""

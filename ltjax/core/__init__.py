"""Pure pytree maths: layer roles, masks, scores and their exact-count selection, tickets and
their controls. Imports nothing of ltjax outside this package."""

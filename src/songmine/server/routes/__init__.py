"""The service's routes, one router per concern; :func:`songmine.server.app.create_app` mounts them."""

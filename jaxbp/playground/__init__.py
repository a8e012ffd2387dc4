"""``jaxbp playground``: the lecture's network learning live in the browser.

A local web app (Starlette + uvicorn) over the library: every browser tab gets a
:class:`~jaxbp.playground.session.Session` that trains with jaxbp's own compiled epoch
(the hand-written BP), and streams one frame of views per step over a WebSocket. The
page (``static/``: plain HTML, CSS and JavaScript, no CDN, no build step) draws them.

Modules: ``settings`` (the page's controls, checked with the library's own checks),
``datasets`` (the data a session trains on, uploads parsed without pickle or a temp
file), ``frames`` (the views: one jitted function over a fixed grid; the BP equations
at a clicked point), ``session`` (one tab's training state and its commands),
``export`` (a jaxbp run folder), ``server`` (the ASGI app). Importing this package
imports no web server: only ``server`` does.
"""

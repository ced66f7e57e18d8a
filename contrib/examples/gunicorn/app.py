import os


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("hello from gunicorn worker %d\n" % os.getpid()).encode()]

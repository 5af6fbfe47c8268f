"""Deferred work (S3 events) is visible to a drain from the moment the request defers it."""

from efsctl.local.deferral import Deferral


def test_work_deferred_by_a_request_counts_until_it_has_run():
    deferral, ran = Deferral(), []

    def app(environ, start_response):
        deferral.defer(lambda: ran.append("event"))
        start_response("200 OK", [])
        return [b"ok"]

    body = deferral.wrap_wsgi(app)({}, lambda *a: None)
    assert list(body) == [b"ok"]          # the client has its response...
    assert deferral.wait_idle(0) is False  # ...but the event is not handed over yet
    body.close()
    assert ran == ["event"] and deferral.wait_idle(0) is True


def test_failing_deferred_work_still_counts_as_run():
    deferral = Deferral()

    def app(environ, start_response):
        deferral.defer(lambda: 1 / 0)
        start_response("200 OK", [])
        return [b"ok"]

    deferral.wrap_wsgi(app)({}, lambda *a: None).close()
    assert deferral.wait_idle(0) is True


def test_work_outside_a_request_runs_at_once():
    deferral, ran = Deferral(), []
    deferral.defer(lambda: ran.append(1))
    assert ran == [1] and deferral.wait_idle(0) is True

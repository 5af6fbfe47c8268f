"""IAM evaluation, the usage log and its report, role session caching: pure, no cloud."""

from __future__ import annotations

import json

from efsctl.local.fidelity.iam_policy import (ALLOWED, EXPLICIT_IDENTITY, EXPLICIT_RESOURCE, IMPLICIT, Principal,
                                              Request, allow_grants, decide, denial_message, glob)
from efsctl.local.fidelity.iam_usage import HANDLER, LAMBDA, MAX_DENIED, FunctionGrants, UsageLog, build_report
from efsctl.local.runtime.credentials import RoleSessions, SessionCredentials

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/efsctl-s-producer"
SESSION = Principal(f"arn:aws:sts::{ACCOUNT}:assumed-role/efsctl-s-producer/efsctl-s-producer", ACCOUNT, ROLE)
BUCKET = "arn:aws:s3:::efsctl-s-bucket"
SECURE = {"aws:SecureTransport": "true", "aws:PrincipalAccount": ACCOUNT}
READ_MODELS = {"Version": "2012-10-17", "Statement": [
    {"Sid": "ReadModels", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{BUCKET}/models/*"}]}
TLS_ONLY = {"Statement": [{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                           "Resource": [BUCKET, f"{BUCKET}/*"],
                           "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def request(action: str, resource: str | None, principal: Principal = SESSION, context=SECURE) -> Request:
    return Request(principal, action, resource, context)


def test_an_identity_allow_grants_only_its_actions_and_resources():
    identity = [("efsctl", READ_MODELS)]
    allowed = decide(identity, [], request("s3:GetObject", f"{BUCKET}/models/a.bin"))
    assert allowed.allowed and allowed.reason == ALLOWED
    assert [(g.policy, g.sid, g.action, g.resource) for g in allowed.grants] == [
        ("efsctl", "ReadModels", "s3:GetObject", f"{BUCKET}/models/*")]
    assert decide(identity, [], request("s3:getobject", f"{BUCKET}/models/a.bin")).allowed   # actions: any case
    assert decide(identity, [], request("s3:GetObject", f"{BUCKET}/Models/a.bin")).reason == IMPLICIT
    assert decide(identity, [], request("s3:PutObject", f"{BUCKET}/models/a.bin")).reason == IMPLICIT


def test_explicit_deny_wins_over_allow_wherever_it_is():
    identity = [("efsctl", READ_MODELS)]
    deny_role = {"Statement": [{"Effect": "Deny", "Principal": {"AWS": ROLE}, "Action": "s3:GetObject",
                                "Resource": f"{BUCKET}/models/secret/*"}]}
    secret = request("s3:GetObject", f"{BUCKET}/models/secret/x")
    assert decide(identity, [("bucket policy", deny_role)], secret).reason == EXPLICIT_RESOURCE
    assert decide(identity, [("bucket policy", deny_role)], request("s3:GetObject", f"{BUCKET}/models/x")).allowed
    both = [("efsctl", READ_MODELS), ("guard", {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]})]
    assert decide(both, [], secret).reason == EXPLICIT_IDENTITY
    operator = Principal(f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT)
    assert decide([], [("bucket policy", deny_role)], request("s3:GetObject", f"{BUCKET}/models/secret/x", operator)
                  ).reason == IMPLICIT   # the role's Deny does not name the operator


def test_a_bucket_policy_allow_for_the_role_suffices_but_one_for_the_account_delegates():
    for_role = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "s3:PutObject",
                               "Resource": f"{BUCKET}/outputs/*"}]}
    for_account = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                  "Action": "s3:PutObject", "Resource": f"{BUCKET}/outputs/*"}]}
    put = request("s3:PutObject", f"{BUCKET}/outputs/r.json")
    found = decide([], [("bucket policy", for_role)], put)
    assert found.allowed and found.resource_policy_allowed and found.grants == ()
    assert decide([], [("bucket policy", for_account)], put).reason == IMPLICIT
    by_service = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                 "Action": "s3:PutObject", "Resource": "*"}]}
    assert decide([], [("bucket policy", by_service)], put).reason == IMPLICIT


def test_conditions_are_evaluated_and_the_tls_only_deny_spares_secure_transport():
    identity = [("efsctl", READ_MODELS)]
    get = f"{BUCKET}/models/a"
    assert decide(identity, [("bucket policy", TLS_ONLY)], request("s3:GetObject", get)).allowed
    plain = {**SECURE, "aws:SecureTransport": "false"}
    assert decide(identity, [("bucket policy", TLS_ONLY)], request("s3:GetObject", get, context=plain)
                  ).reason == EXPLICIT_RESOURCE
    unknown_operator = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
                                       "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}}]}
    assert decide(identity, [("bucket policy", unknown_operator)], request("s3:GetObject", get)).allowed


def test_not_action_not_resource_and_policy_variables():
    everything_but_delete = {"Statement": [{"Effect": "Allow", "NotAction": "s3:Delete*",
                                            "NotResource": f"{BUCKET}/x/*"}]}
    policies = [("p", everything_but_delete)]
    assert decide(policies, [], request("s3:GetObject", f"{BUCKET}/models/a")).allowed
    assert decide(policies, [], request("s3:DeleteObject", f"{BUCKET}/models/a")).reason == IMPLICIT
    assert decide(policies, [], request("s3:GetObject", f"{BUCKET}/x/a")).reason == IMPLICIT
    own_prefix = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                 "Resource": f"{BUCKET}/${{aws:PrincipalAccount}}/*"}]}
    assert decide([("p", own_prefix)], [], request("s3:GetObject", f"{BUCKET}/{ACCOUNT}/a")).allowed
    assert not decide([("p", own_prefix)], [], request("s3:GetObject", f"{BUCKET}/999/a")).allowed
    assert glob("a[1]*", "a[1]b") and not glob("a[1]*", "a1b")   # brackets are literal in IAM


def test_denial_messages_are_aws_texts():
    get = request("s3:GetObject", f"{BUCKET}/models/a b.bin")
    assert denial_message(decide([], [], get), get, quote_resource=True) == (
        f'User: {SESSION.arn} is not authorized to perform: s3:GetObject on resource: "{BUCKET}/models/a b.bin" '
        "because no identity-based policy allows the s3:GetObject action")
    deny = [("bucket policy", {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}]})]
    assert denial_message(decide([], deny, get), get).endswith(
        f"on resource: {BUCKET}/models/a b.bin with an explicit deny in a resource-based policy")
    guard = [("guard", {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})]
    assert denial_message(decide(guard, [], get), get).endswith("with an explicit deny in an identity-based policy")


def test_allow_grants_are_the_report_units():
    policy = {"Statement": [{"Sid": "Two", "Effect": "Allow", "Action": ["a:X", "a:Y"], "Resource": ["r1", "r2"]},
                            {"Effect": "Deny", "Action": "a:Z", "Resource": "*"}]}
    assert [(g.sid, g.action, g.resource) for g in allow_grants([("p", policy)])] == [
        ("Two", "a:X", "r1"), ("Two", "a:X", "r2"), ("Two", "a:Y", "r1"), ("Two", "a:Y", "r2")]


def _log(tmp_path, now=lambda: 1_000.0) -> UsageLog:
    return UsageLog(tmp_path / "iam-usage.json", clock=now)


def test_the_usage_log_aggregates_persists_atomically_and_reloads(tmp_path):
    log = _log(tmp_path)
    identity = [("efsctl", READ_MODELS)]
    for key in ("a", "b", "a"):
        get = request("s3:GetObject", f"{BUCKET}/models/{key}")
        log.record(function="fn", role_arn=ROLE, principal_arn=SESSION.arn, by=HANDLER, action=get.action,
                   resource=get.resource, decision=decide(identity, [], get))
    put = request("s3:PutObject", f"{BUCKET}/outputs/r")
    refused = decide(identity, [], put)
    log.record(function="fn", role_arn=ROLE, principal_arn=SESSION.arn, by=HANDLER, action=put.action,
               resource=put.resource, decision=refused, message=denial_message(refused, put, quote_resource=True))
    log.close()
    assert not list(tmp_path.glob(".*.tmp"))
    entries = json.loads((tmp_path / "iam-usage.json").read_text())["functions"]["fn"]["entries"]
    allowed = next(e for e in entries.values() if e["decision"] == "allowed")
    assert (allowed["count"], allowed["resource"], allowed["examples"]) == (
        3, f"{BUCKET}/models/*", [f"{BUCKET}/models/a", f"{BUCKET}/models/b"])
    reopened = _log(tmp_path)
    assert reopened.snapshot()["functions"]["fn"]["entries"] == entries
    reopened.close()


def test_denied_resources_are_bounded(tmp_path):
    log = _log(tmp_path)
    for index in range(MAX_DENIED + 10):
        put = request("s3:PutObject", f"{BUCKET}/outputs/{index}")
        log.record(function="fn", role_arn=ROLE, principal_arn=SESSION.arn, by=HANDLER, action=put.action,
                   resource=put.resource, decision=decide([], [], put), message="no")
    entries = log.snapshot()["functions"]["fn"]["entries"]
    assert len(entries) == MAX_DENIED + 1
    assert entries[f"{HANDLER}|s3:PutObject|denied|*"]["count"] == 10
    log.close()


def test_the_report_sets_use_against_grants_and_explains_lambdas_own():
    policy = {"Statement": [
        {"Sid": "ReadModels", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{BUCKET}/models/*"},
        {"Sid": "Extra", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": f"{BUCKET}/*"},
        {"Sid": "VpcNetworkInterfaces", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"]}]}
    identity = [("efsctl", policy)]
    log = UsageLog(None, clock=lambda: 0.0)
    get = request("s3:GetObject", f"{BUCKET}/models/a")
    log.record(function="fn", role_arn=ROLE, principal_arn=SESSION.arn, by=HANDLER, action=get.action,
               resource=get.resource, decision=decide(identity, [], get))
    eni = request("ec2:CreateNetworkInterface", None)
    log.record(function="fn", role_arn=ROLE, principal_arn=SESSION.arn, by=LAMBDA, action=eni.action, resource="*",
               decision=decide(identity, [], eni))
    grants = tuple(allow_grants(identity))
    report = build_report(log.snapshot(), [FunctionGrants("fn", ROLE, grants)])["functions"]["fn"]
    assert [(u["action"], u["by"]) for u in report["used"]] == [("s3:GetObject", HANDLER),
                                                                ("ec2:CreateNetworkInterface", LAMBDA)]
    assert "network interfaces" in report["used"][1]["why"]
    unused = {u["action"]: u for u in report["unused"]}
    assert set(unused) == {"s3:DeleteObject", "ec2:DeleteNetworkInterface"}
    deletion = unused["ec2:DeleteNetworkInterface"]
    assert deletion["explained"] and "deletes" in deletion["why"]
    assert [u["action"] for u in report["unexplained"]] == ["s3:DeleteObject"]
    offline = build_report(log.snapshot(), None)["functions"]["fn"]
    assert offline["unused"] is None and offline["used"] == report["used"]


def test_role_sessions_are_cached_until_too_little_of_their_life_is_left():
    now = [0.0]
    calls = []

    def assume(role: str, name: str, duration: int) -> SessionCredentials:
        calls.append((role, name, duration))
        return SessionCredentials(f"ASIA{len(calls)}", "secret", "token", now[0] + duration)

    sessions = RoleSessions(assume, duration=3600, clock=lambda: now[0])
    first = sessions.get(ROLE, "fn", lasting=900)
    assert sessions.get(ROLE, "fn", lasting=900) is first
    assert sessions.get(ROLE, "other", lasting=900) is not first   # one session per function
    now[0] = 3600 - 900 - 30    # less than an invocation and a minute left
    assert sessions.get(ROLE, "fn", lasting=900).access_key_id == "ASIA3"
    assert calls == [(ROLE, "fn", 3600), (ROLE, "other", 3600), (ROLE, "fn", 3600)]
    assert first.environment() == {"AWS_ACCESS_KEY_ID": "ASIA1", "AWS_SECRET_ACCESS_KEY": "secret",
                                   "AWS_SESSION_TOKEN": "token"}


def test_a_session_issued_before_the_patches_saw_it_is_found_in_moto(moto_aws):
    import boto3

    from efsctl.local.fidelity.iam_sessions import Sessions

    iam = boto3.client("iam", region_name="us-east-1")
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    found = boto3.client("sts", region_name="us-east-1").assume_role(RoleArn=role, RoleSessionName="fn")["Credentials"]
    session = Sessions().get(found["AccessKeyId"])
    assert (session.role_arn, session.name, session.token) == (role, "fn", found["SessionToken"])
    assert abs(session.expiration - found["Expiration"].timestamp()) < 1
    assert Sessions().get("testing") is None

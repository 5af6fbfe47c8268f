"""API Gateway v2 (HTTP API): the API, its Lambda integration, routes and ``$default`` stage.

The tagging API misses API Gateway in moto, so the API is found through GetApis and its tags.
"""

from __future__ import annotations

from typing import Any, Mapping

from efsctl.aws.errors import attempt, aws_call, is_code
from efsctl.aws.paginate import paginate
from efsctl.aws.session import AwsContext


def _apigw(aws: AwsContext) -> Any:
    return aws.client("apigatewayv2")


def api_arn(region: str, api_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:apigateway:{region}::/apis/{api_id}"


def stage_arn(region: str, api_id: str, stage: str, partition: str = "aws") -> str:
    return f"arn:{partition}:apigateway:{region}::/apis/{api_id}/stages/{stage}"


@aws_call
def find_apis(aws: AwsContext, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """HTTP APIs carrying every tag in ``tags``."""
    return [api for api in paginate(_apigw(aws), "get_apis", "Items")
            if all((api.get("Tags") or {}).get(k) == v for k, v in tags.items())]


@aws_call
def get_api(aws: AwsContext, api_id: str) -> dict[str, Any] | None:
    try:
        return _apigw(aws).get_api(ApiId=api_id)
    except Exception as exc:
        if is_code(exc, "NotFoundException"):
            return None
        raise


@aws_call
def create_http_api(aws: AwsContext, name: str, *, description: str, tags: Mapping[str, str]) -> dict[str, Any]:
    # No quick create (``Target``): it would add an open ``$default`` route.
    return _apigw(aws).create_api(Name=name, ProtocolType="HTTP", Description=description, Tags=dict(tags))


@aws_call
def integrations(aws: AwsContext, api_id: str) -> list[dict[str, Any]]:
    return list(paginate(_apigw(aws), "get_integrations", "Items", ApiId=api_id))


@aws_call
def create_lambda_integration(aws: AwsContext, api_id: str, *, function_arn: str, payload_version: str,
                              timeout_ms: int) -> dict[str, Any]:
    return _apigw(aws).create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationMethod="POST", IntegrationUri=function_arn,
        PayloadFormatVersion=payload_version, TimeoutInMillis=timeout_ms)


@aws_call
def update_lambda_integration(aws: AwsContext, api_id: str, integration_id: str, *, function_arn: str,
                              payload_version: str, timeout_ms: int) -> dict[str, Any]:
    return _apigw(aws).update_integration(
        ApiId=api_id, IntegrationId=integration_id, IntegrationType="AWS_PROXY", IntegrationMethod="POST",
        IntegrationUri=function_arn, PayloadFormatVersion=payload_version, TimeoutInMillis=timeout_ms)


@aws_call
def routes(aws: AwsContext, api_id: str) -> list[dict[str, Any]]:
    return list(paginate(_apigw(aws), "get_routes", "Items", ApiId=api_id))


@aws_call
def create_route(aws: AwsContext, api_id: str, route_key: str, *, target: str, authorization: str) -> dict[str, Any]:
    return _apigw(aws).create_route(ApiId=api_id, RouteKey=route_key, Target=target,
                                    AuthorizationType=authorization)


@aws_call
def update_route(aws: AwsContext, api_id: str, route_id: str, *, target: str, authorization: str) -> None:
    _apigw(aws).update_route(ApiId=api_id, RouteId=route_id, Target=target, AuthorizationType=authorization)


@aws_call
def delete_route(aws: AwsContext, api_id: str, route_id: str) -> None:
    try:
        _apigw(aws).delete_route(ApiId=api_id, RouteId=route_id)
    except Exception as exc:
        if not is_code(exc, "NotFoundException"):
            raise


@aws_call
def stages(aws: AwsContext, api_id: str) -> list[dict[str, Any]]:
    return list(paginate(_apigw(aws), "get_stages", "Items", ApiId=api_id))


@aws_call
def create_stage(aws: AwsContext, api_id: str, name: str, *, auto_deploy: bool, tags: Mapping[str, str]) -> None:
    try:
        _apigw(aws).create_stage(ApiId=api_id, StageName=name, AutoDeploy=auto_deploy, Tags=dict(tags))
    except Exception as exc:
        if not is_code(exc, "ConflictException"):
            raise


@aws_call
def set_stage_auto_deploy(aws: AwsContext, api_id: str, name: str, auto_deploy: bool) -> None:
    _apigw(aws).update_stage(ApiId=api_id, StageName=name, AutoDeploy=auto_deploy)


@aws_call
def tag_resource(aws: AwsContext, arn: str, tags: Mapping[str, str]) -> None:
    if tags:
        _apigw(aws).tag_resource(ResourceArn=arn, Tags=dict(tags))


# --- teardown (`efsctl down`) ----------------------------------------------------------------

@aws_call
def delete_api(aws: AwsContext, api_id: str) -> bool:
    """Delete the HTTP API with its integrations, routes and stages."""
    return attempt(lambda: _apigw(aws).delete_api(ApiId=api_id), "NotFoundException")

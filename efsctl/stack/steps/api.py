"""Steps for the HTTP API: the API, its Lambda integration, the routes and the ``$default`` stage."""

from __future__ import annotations

from efsctl.aws import apigw
from efsctl.stack.drift import Drift, missing_tags, route_delta
from efsctl.stack.model import ApiIntegration, ApiRoutes, ApiStage, HttpApi
from efsctl.stack.observed import (Observed, api_observed, filled, integration_observed, routes_observed,
                                   stage_observed)
from efsctl.stack.steps.base import Step, StepContext, said


class HttpApiStep(Step):
    def create(self, d: HttpApi, ctx: StepContext) -> Observed:
        api = apigw.create_http_api(ctx.aws, d.name, description=d.description, tags=d.tags)
        return api_observed(filled(api, Name=d.name, Tags=dict(d.tags)),
                            apigw.api_arn(ctx.names.region, api["ApiId"], ctx.names.partition))

    def update(self, d: HttpApi, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        missing = missing_tags(d, o)
        if missing:
            apigw.tag_resource(ctx.aws, o.arn or apigw.api_arn(ctx.names.region, o.id, ctx.names.partition), missing)
            o.tags.update(missing)
        return o

    def delete(self, ctx: StepContext) -> str:
        return said([apigw.delete_api(ctx.aws, api.id) for api in ctx.targets]) + " (integration, routes, stage)"


class IntegrationStep(Step):
    def create(self, d: ApiIntegration, ctx: StepContext) -> Observed:
        made = apigw.create_lambda_integration(ctx.aws, d.api, function_arn=d.function,
                                               payload_version=d.payload_version, timeout_ms=d.timeout_ms)
        return self._observed(d, made)

    def update(self, d: ApiIntegration, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        made = apigw.update_lambda_integration(ctx.aws, d.api, o.id, function_arn=d.function,
                                               payload_version=d.payload_version, timeout_ms=d.timeout_ms)
        return self._observed(d, {"IntegrationId": o.id, **made})

    @staticmethod
    def _observed(d: ApiIntegration, item: dict) -> Observed:
        return integration_observed(filled(item, IntegrationUri=d.function, IntegrationType="AWS_PROXY",
                                           PayloadFormatVersion=d.payload_version, TimeoutInMillis=d.timeout_ms),
                                    d.api)


class RoutesStep(Step):
    def create(self, d: ApiRoutes, ctx: StepContext) -> Observed:
        return self._converge(d, None, ctx)

    def update(self, d: ApiRoutes, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        return self._converge(d, o, ctx)

    def _converge(self, d: ApiRoutes, o: Observed | None, ctx: StepContext) -> Observed:
        create, update, delete = route_delta(d, o)
        routes = {key: {"RouteKey": key, "RouteId": r["id"], "Target": r["target"], "AuthorizationType": r["authorization"]}
                  for key, r in (o.attrs["routes"] if o else {}).items()}
        ours = {"Target": d.target, "AuthorizationType": d.authorization}
        for key in create:
            made = apigw.create_route(ctx.aws, d.api, key, target=d.target, authorization=d.authorization)
            routes[key] = {"RouteKey": key, "RouteId": made["RouteId"], **ours}
        for key, route_id in update:
            apigw.update_route(ctx.aws, d.api, route_id, target=d.target, authorization=d.authorization)
            routes[key] = {"RouteKey": key, "RouteId": route_id, **ours}
        # Only our routes: an unexpected one (say an open `$default`) would bypass AWS_IAM.
        for key, route_id in delete:
            apigw.delete_route(ctx.aws, d.api, route_id)
            routes.pop(key, None)
        return routes_observed(d.api, list(routes.values()))


class StageStep(Step):
    def create(self, d: ApiStage, ctx: StepContext) -> Observed:
        apigw.create_stage(ctx.aws, d.api, d.name, auto_deploy=d.auto_deploy, tags=d.tags)
        return stage_observed({"StageName": d.name, "AutoDeploy": d.auto_deploy, "Tags": dict(d.tags)}, d.api,
                              apigw.stage_arn(ctx.names.region, d.api, d.name, ctx.names.partition))

    def update(self, d: ApiStage, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        if "auto_deploy" in drift.fields():
            apigw.set_stage_auto_deploy(ctx.aws, d.api, d.name, d.auto_deploy)
            o.attrs["auto_deploy"] = d.auto_deploy
        missing = missing_tags(d, o)
        if missing:
            apigw.tag_resource(ctx.aws, o.arn or apigw.stage_arn(ctx.names.region, d.api, d.name,
                                                                 ctx.names.partition), missing)
            o.tags.update(missing)
        return o


STEPS = {"http-api": HttpApiStep(), "api-integration": IntegrationStep(), "api-routes": RoutesStep(),
         "api-stage": StageStep()}

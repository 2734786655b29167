"""The REST API under /api/v1/: routers, authentication, error bodies and the self-hosted docs."""

from __future__ import annotations

from ninja import NinjaAPI, Swagger

from kehu.api.auth import default_auth
from kehu.api.errors import install_error_handlers
from kehu.api.routers import auth, customers, me, policies, units, users

DESCRIPTION = """\
Kehu's REST API. Obtain a token with `POST /api/v1/auth/token` and send it as
`Authorization: Bearer <token>`; a signed-in web session works too (this page uses it).

Every answer is limited to the caller's data scope: a record outside it answers **404**, exactly like a
missing one. Lists take `limit` (default 50, at most 500) and `offset` and answer `{items, count}`.
Errors answer `{detail}` (plus `field` and `code` for bad input, 400).
"""

# Swagger UI from ninja's bundled static files ("ninja" is in INSTALLED_APPS), never from a CDN; the
# online spec validator badge (validator.swagger.io) is switched off, as intranets have no internet.
docs = Swagger(settings={"validatorUrl": None, "persistAuthorization": False, "tryItOutEnabled": False})

api = NinjaAPI(
    title="Kehu API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs=docs,
    docs_url="/docs",
    auth=default_auth,
)
install_error_handlers(api)

api.add_router("/auth", auth.router)
api.add_router("/me", me.router)
api.add_router("/units", units.router)
api.add_router("/users", users.router)
api.add_router("/customers", customers.router)
api.add_router("/jobs", customers.jobs_router)
api.add_router("/customers", policies.customer_results_router)
api.add_router("/sales", policies.sales_router)
api.add_router("/policies", policies.policies_router)
api.add_router("/close", policies.close_router)
api.add_router("/overrides", policies.overrides_router)

"""The burst service's FastAPI app and how it is assembled from settings."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.burst.api.routes import health, operations
from services.burst.config import BurstSettings
from services.burst.engine import Engine
from services.burst.events import EventLog
from services.burst.images import FileImageSource, ImageSource
from services.burst.provider.base import Provider
from services.burst.service import BurstService
from services.burst.usage import BurstUsage
from shared.auth import TenantAuth
from shared.bearer import Authenticator
from shared.licences import AllOn, LicenceView, LicenceWatch


def build_engine(settings: BurstSettings, provider: Provider | None = None, images: ImageSource | None = None,
                 emitter=None) -> Engine:
    if provider is None:
        from services.burst.provider.openstack import OpenStackProvider
        provider = OpenStackProvider.from_settings(settings)
    if emitter is None and settings.burst_usage:
        from shared.usage import UsageEmitter
        emitter = UsageEmitter(settings.kafka_bootstrap, "/dialback/burst")
    engine = Engine(EventLog(settings.burst_state_dir), provider, images or image_source(settings),
                    BurstUsage(emitter), prod_network=settings.burst_prod_network,
                    drtest_cidr=settings.burst_drtest_cidr, default_flavor=settings.burst_default_flavor,
                    boot_timeout=settings.burst_boot_timeout, usage_interval=settings.burst_usage_interval)
    if settings.has_object_store():
        from services.burst.failback import Failback
        from shared.objectstore.factory import store_from_settings
        http = None
        if settings.burst_agent_token_file is not None:  # the reverse tap's control API wants its token
            import httpx
            token = settings.burst_agent_token_file.read_text().strip()
            http = httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"})
        engine.failback = Failback(store_from_settings(settings), settings.bucket_prefix, http=http,
                                   allowed_hosts=settings.burst_failback_allowed_hosts)
    return engine


def image_source(settings: BurstSettings) -> ImageSource:
    """Recovery images from MinIO when the service has object-store settings, else files (tests, demos)."""
    if settings.image_source_kind() == "files":
        return FileImageSource(settings.burst_images_dir)
    from services.burst.recovery_images import RecoveryImageSource
    from shared.objectstore.factory import store_from_settings
    return RecoveryImageSource(store_from_settings(settings), settings.burst_work_dir, settings.bucket_prefix)


def create_app(settings: BurstSettings | None = None, engine: Engine | None = None,
               auth: Authenticator | None = None, licences: LicenceView | None = None) -> FastAPI:
    """``auth`` answers "whose token is this?" (default: the tenants file of the settings); ``licences``
    what is switched on (default: the licensing topic when the engine is built here and emits usage to
    Kafka, else all on)."""
    settings = settings or BurstSettings()
    admin_token = settings.admin_token()  # a placeholder is refused before anything starts
    if licences is None:
        # an engine built here reaches Kafka when it emits usage, and so does its licence view; an engine
        # handed in (tests, embedding) comes with its caller's licences, or all on
        on_kafka = engine is None and settings.burst_usage
        licences = LicenceWatch(settings.kafka_bootstrap, settings.licensing_topic) if on_kafka else AllOn()
    svc = BurstService(engine or build_engine(settings), tick_seconds=settings.burst_tick_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.start()  # the first tick resumes whatever a previous process left unfinished
        if isinstance(licences, LicenceWatch):
            licences.start()
        yield
        svc.stop()
        if isinstance(licences, LicenceWatch):
            licences.close()

    app = FastAPI(title="Dialback burst", version="1", lifespan=lifespan)
    app.state.burst = svc
    app.state.auth = auth or TenantAuth(settings.resolved_tenants_file())
    app.state.admin_token = admin_token
    app.state.licences = licences
    app.state.failback_root = settings.burst_failback_root
    app.include_router(health.router)
    app.include_router(operations.router)
    return app

"""Commands that put kgcelery on real parts: ``kgcelery topics create`` and
``kgcelery deploy render <client>``.

``topics create`` is the one-shot job of ``docker-compose.yml`` (and of a Kubernetes
Job): every input and dead-letter topic, with the partitions, replicas and retention
the settings give (:func:`kgcelery.kafka.topic_specs`). ``deploy render`` prints the
per-client objects that the ``kubernetes`` scaler would apply, rendered by the scaler's
own :class:`~kgcelery.control.scalers.k8s.Templates` from ``deploy/``, for review,
GitOps or ``kubectl apply -f -``.
"""

from __future__ import annotations

import sys

import click
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kgcelery.client_topics import ClientTopics
from kgcelery.clients import validate_client_id
from kgcelery.cliutil import EXIT_UNAVAILABLE, EXIT_USAGE, friendly_errors, load_settings
from kgcelery.errors import InvalidClientIdError
from kgcelery.kafka import all_topics, common_config, ensure_topics, topic_specs


@click.group()
def topics() -> None:
    """Kafka topics of kgcelery: the input topics and the dead-letter topics."""


@topics.command("create")
@click.option("--client", "clients", multiple=True, metavar="CLIENT",
              help="Also CLIENT's own topics, as KGCELERY_CLIENT_TOPICS names them (agent "
                   "chart 1.0.x, on a Kafka that does not create topics when first "
                   "written to). Repeatable.")
@click.option("--dry-run", is_flag=True, help="Print what would be created; touch nothing.")
@click.option("--timeout", default=30.0, show_default=True,
              help="Seconds to wait for Kafka's answers.")
@friendly_errors
def topics_create(clients: tuple[str, ...], dry_run: bool, timeout: float) -> None:
    """Create every topic kgcelery uses that does not exist yet (idempotent).

    Partitions: KGCELERY_TOPIC_PARTITIONS; replicas: KGCELERY_TOPIC_REPLICATION_FACTOR;
    retention: KGCELERY_TOPIC_RETENTION_MS (inputs), KGCELERY_DLQ_RETENTION_MS (dead
    letters); per topic: KGCELERY_TOPIC_OVERRIDES. Existing topics are not changed;
    one with fewer partitions than asked for is reported.
    """
    settings = load_settings()
    names = all_topics(settings)
    if clients:
        client_topics = ClientTopics.of(settings.client_topics)
        if not client_topics:
            click.echo("kgcelery: --client needs KGCELERY_CLIENT_TOPICS (e.g. chart-1.0): "
                       "it names a client's own topics", err=True)
            sys.exit(EXIT_USAGE)
        for client in clients:
            try:
                validate_client_id(client)
            except InvalidClientIdError as exc:
                click.echo(f"kgcelery: {exc}", err=True)
                sys.exit(EXIT_USAGE)
            names += client_topics.topics_of(client)
    specs = topic_specs(settings, names)
    if dry_run:
        for spec in specs:
            configs = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
            click.echo(f"{spec.name}: {spec.partitions} partitions x{spec.replication_factor}"
                       f" ({configs})")
        return
    try:
        created = set(ensure_topics(settings, names, timeout=timeout))
        existing = AdminClient(common_config(settings)).list_topics(timeout=timeout).topics
    except KafkaException as exc:
        click.echo(f"kgcelery: Kafka at {settings.kafka_bootstrap_servers} is unreachable or "
                   f"refused: {exc}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    for spec in specs:
        have = len(existing[spec.name].partitions) if spec.name in existing else 0
        if spec.name in created:
            click.echo(f"created {spec.name} ({spec.partitions} partitions)")
        elif have < spec.partitions:
            click.echo(f"exists  {spec.name} with {have} partitions, fewer than "
                       f"{spec.partitions}: add them with kafka-topics.sh --alter")
        else:
            click.echo(f"exists  {spec.name} ({have} partitions)")


@click.group()
def deploy() -> None:
    """Kubernetes: the objects kgcelery's kubernetes scaler manages."""


@deploy.command("render")
@click.argument("client_id", metavar="CLIENT")
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(0, 1000),
              help="Workers (in keda mode: the ScaledObject's minReplicaCount).")
@click.option("--mode", type=click.Choice(["deployment", "keda"]),
              help="Override KGCELERY_KUBERNETES_MODE.")
@friendly_errors
def deploy_render(client_id: str, replicas: int, mode: str | None) -> None:
    """Print CLIENT's worker Deployment (and in keda mode its ScaledObject) as YAML,
    exactly as the kubernetes scaler would apply them (templates from
    KGCELERY_KUBERNETES_TEMPLATE_DIR, image KGCELERY_KUBERNETES_WORKER_IMAGE).
    """
    from kgcelery.clients import validate_client_id
    from kgcelery.control.scalers.k8s import Templates

    try:
        import yaml
    except ImportError:
        click.echo("kgcelery: rendering needs PyYAML: pip install 'kgcelery[kubernetes]'",
                   err=True)
        sys.exit(EXIT_USAGE)
    validate_client_id(client_id)
    settings = load_settings()
    templates = Templates(settings)
    try:
        objects = [templates.deployment(client_id, replicas)]
        if (mode or settings.kubernetes_mode) == "keda":
            objects.append(templates.scaled_object(client_id, min_replicas=replicas))
    except FileNotFoundError as exc:
        click.echo(f"kgcelery: no template at {exc.filename}: run from the repository root "
                   "or set KGCELERY_KUBERNETES_TEMPLATE_DIR", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)

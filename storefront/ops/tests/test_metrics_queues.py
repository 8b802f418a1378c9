"""storefront_celery_queue_length: tasks waiting per Celery queue, read from a real broker at
scrape time with no worker consuming (a private redis-server; the machine's RabbitMQ).

Each test publishes to a queue of its own through the Celery app (send_task, as the web side
does), which is how the app comes to know the queue (task_create_missing_queues).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from django.test import Client

from harness import Unavailable, free_port
from harness.cache_servers import black_hole_server, running_redis
from storefront.celery import app
from storefront.ops.metrics import celery_queue_names, queue_lengths
from storefront.ops.tests.test_metrics import scrape, value

pytestmark = [
    pytest.mark.django_db,
    # send_task queues the message even in tests (where tasks otherwise run eagerly).
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

TASK = "storefront.ops.tasks.clear_expired_sessions"
METRIC = "storefront_celery_queue_length"
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue name of this test's own; the app forgets it afterwards."""
    name = f"sf-depth-{uuid.uuid4().hex[:12]}"
    yield name
    app.amqp.queues.pop(name, None)


def publish(url: str, queue: str, priorities: list[int], **transport_options: object) -> None:
    with app.connection_for_write(url, transport_options=transport_options) as connection:
        for priority in priorities:
            app.send_task(TASK, queue=queue, priority=priority, connection=connection)


def depth_samples(client: Client) -> dict[str, float]:
    return {
        dict(labels)["queue"]: v for (name, labels), v in scrape(client).items() if name == METRIC
    }


# --- Which queues ----------------------------------------------------------------------------


def test_queue_names_are_the_apps_default_declared_and_routed_queues(monkeypatch) -> None:
    from kombu import Queue

    assert app.conf.task_default_queue in celery_queue_names()
    monkeypatch.setitem(
        app.conf,
        "task_routes",
        [
            {"a.task": {"queue": "sf-routed-dict"}, "b.task": "sf-routed-name"},
            {"c.task": {"queue": Queue("sf-routed-queue")}, "d.task": {"priority": 3}},
        ],
    )
    monkeypatch.setitem(app.amqp.queues, "sf-declared", Queue("sf-declared"))
    names = celery_queue_names()
    for name in ("sf-routed-dict", "sf-routed-name", "sf-routed-queue", "sf-declared"):
        assert name in names
    assert "" not in names and names == sorted(set(names))


# --- Redis -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transport_options",
    [
        {},  # kombu's defaults: priority steps 0, 3, 6, 9 and its "\x06\x16" separator
        {"priority_steps": list(range(10)), "sep": ":", "global_keyprefix": "shop:"},
    ],
    ids=["default-options", "custom-steps-sep-prefix"],
)
def test_redis_depth_sums_every_priority_list(
    client: Client, settings, queue: str, transport_options: dict
) -> None:
    with running_redis() as redis_server:
        settings.STOREFRONT_BROKER_URL = redis_server.url
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, **transport_options}
        publish(redis_server.url, queue, [0, 0, 3, 5, 9, 9, 9], **transport_options)

        # The tasks really are spread over several lists, under the configured names.
        prefix = transport_options.get("global_keyprefix", "")
        lists = [
            key
            for key in redis_server.keys(f"{prefix}{queue}*")
            if redis_server.client().type(key) == b"list"
        ]
        assert len(lists) >= 3 and f"{prefix}{queue}" in lists

        lengths = queue_lengths()
        assert lengths[queue] == 7
        assert lengths[app.conf.task_default_queue] == 0
        assert {q: n for q, n in lengths.items() if n} == {queue: 7}
        samples = depth_samples(client)
        assert samples[queue] == 7
        assert samples[app.conf.task_default_queue] == 0

        with redis_server.client() as redis:  # a worker takes one task off the queue
            assert redis.rpop(f"{prefix}{queue}") is not None
        assert queue_lengths()[queue] == 6


# --- RabbitMQ --------------------------------------------------------------------------------


@pytest.fixture
def rabbitmq_url() -> str:
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=0)
    except Exception as exc:
        raise Unavailable(f"RabbitMQ at {RABBITMQ_URL} (set RABBITMQ_URL): {exc}") from exc
    return RABBITMQ_URL


def test_rabbitmq_depth_is_the_queues_ready_messages(
    client: Client, settings, queue: str, rabbitmq_url: str
) -> None:
    from kombu import Connection

    settings.STOREFRONT_BROKER_URL = rabbitmq_url
    try:
        # Publisher confirms: each publish returns once RabbitMQ has the message queued, so the
        # count below cannot race the broker (without them CI once read 1 of 4).
        publish(rabbitmq_url, queue, [0, 0, 5, 9], confirm_publish=True)
        lengths = queue_lengths()
        assert lengths[queue] == 4
        assert {q: n for q, n in lengths.items() if n} == {queue: 4}
        # A queue the app knows that RabbitMQ has not declared yet holds nothing.
        assert lengths[app.conf.task_default_queue] == 0
        assert value(scrape(client), METRIC, queue=queue) == 4

        with Connection(rabbitmq_url) as connection:  # a consumer takes one and acknowledges it
            channel = connection.channel()
            message = channel.basic_get(queue)
            assert message is not None
            channel.basic_ack(message.delivery_tag)
        assert queue_lengths()[queue] == 3
    finally:
        with Connection(rabbitmq_url) as connection:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


# --- No answer -------------------------------------------------------------------------------


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as probe:  # nothing listens there now
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_broker_that_is_down_gives_no_depth_and_the_scrape_answers(
    client: Client, settings, scheme: str
) -> None:
    port = _closed_port()
    settings.STOREFRONT_BROKER_URL = (
        f"redis://127.0.0.1:{port}/0"
        if scheme == "redis"
        else f"amqp://guest:guest@127.0.0.1:{port}//"
    )
    assert queue_lengths() == {}
    assert depth_samples(client) == {}  # the scrape still answers 200 (scrape() checks)


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_broker_that_never_answers_gives_no_depth(settings, scheme: str) -> None:
    with black_hole_server() as hole:
        settings.STOREFRONT_BROKER_URL = (
            hole.url if scheme == "redis" else f"amqp://guest:guest@127.0.0.1:{hole.port}//"
        )
        assert queue_lengths() == {}
        assert hole.accepted >= 1  # it did try, and gave up after BROKER_TIMEOUT


@pytest.mark.parametrize("url", ["", "memory://", "sqs://"])
def test_no_broker_or_another_transport_gives_no_depth(settings, url: str) -> None:
    settings.STOREFRONT_BROKER_URL = url
    assert queue_lengths() == {}

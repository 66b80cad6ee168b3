from services.fanout.settings import FanoutSettings
from services.fanout.worker import FanoutWorker
from services.kit.server import service
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(FanoutSettings)
    worker = FanoutWorker(settings)
    # No API of its own: the kit still serves health, reflection and metrics.
    service.run(
        service.Service(
            name="fanout",
            port=service_port("fanout"),
            servicers=[],
            on_start=[worker.start],
            on_stop=[worker.stop],
            background=[worker.run, worker.watch_redis_epoch],
        )
    )


if __name__ == "__main__":
    main()

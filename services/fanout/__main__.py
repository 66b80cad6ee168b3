from services.fanout.worker import FanoutWorker
from services.kit import server
from services.kit.config import SERVICE_PORTS, env_int, load_settings


def main() -> None:
    settings = load_settings()
    worker = FanoutWorker(settings)
    # No API of its own: the kit still serves health, reflection and metrics.
    server.run(
        server.Service(
            name="fanout",
            port=env_int("AVIARY_FANOUT_PORT", SERVICE_PORTS["fanout"]),
            servicers=[],
            on_start=[worker.start],
            on_stop=[worker.stop],
            background=[worker.run],
        )
    )


if __name__ == "__main__":
    main()

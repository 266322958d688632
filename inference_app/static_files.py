"""WhiteNoise as an async middleware.

WhiteNoise's middleware is sync-only. Under ASGI one sync middleware makes Django run the whole
chain through a thread per request (sync_to_async down, async_to_sync back up): slower, and at
shutdown those threads wait forever on an event loop that has stopped, so daphne never exits
(and exit hooks, such as the gateway's final usage settlement, never run). The lookup itself is
a dict read, so it is done right here; a hit is served as WhiteNoise serves it.
"""

from asgiref.sync import markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        super().__init__(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request):
        if self.autorefresh:  # development: look on disk each time
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(
                request.path_info
            )
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)

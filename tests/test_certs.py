import ssl

from aiohttp import ClientSession, web
from cryptography import x509

from signaling.certs import ensure_certificates
from tests.conftest import free_port


def test_certificates_cover_localhost_and_loopback(tmp_path) -> None:
    ca, cert, key = ensure_certificates(tmp_path)
    server = x509.load_pem_x509_certificate(cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(i) for i in names.get_values_for_type(x509.IPAddress)}
    assert (key.stat().st_mode & 0o777) == 0o600
    # a second start keeps them
    again = ensure_certificates(tmp_path)
    assert again[1].read_bytes() == cert.read_bytes()


async def test_tls_server_is_trusted_with_the_generated_ca(tmp_path) -> None:
    ca, cert, key = ensure_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(ca))
        async with ClientSession() as http:
            async with http.get(f"https://localhost:{port}/", ssl=client_ctx) as resp:
                assert await resp.text() == "hello"
    finally:
        await runner.cleanup()

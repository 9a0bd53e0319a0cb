-- wrk: sign in as the benchmark's user on every request.
wrk.method = "POST"
wrk.path = "/api/auth/login"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Client-Id"] = "bench"
wrk.body = '{"email": "bench@example.org", "password": "a long benchmark passphrase"}'

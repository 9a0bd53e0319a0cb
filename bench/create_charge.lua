-- wrk: POST a new charge to the payments simulator on every request.
wrk.method = "POST"
wrk.path = "/v1/charges"
wrk.headers["Authorization"] = "Bearer sk_test_proving_ground"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"amount": 1250, "currency": "eur", "customer": "cus_bench", "metadata": {"order": "o-1"}}'

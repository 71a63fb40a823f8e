/**
 * The testing kit's TLS material, embedded as text so the built package needs
 * no file I/O. Test-only: never trust `testCa` outside tests.
 *
 * - `testCa`: a self-signed CA, CN "session-proxy test CA", valid 2020–2120.
 *   Its private key was discarded right after signing the leaf, and the CA
 *   carries critical name constraints (localhost, *.test, 127.0.0.0/8, ::1):
 *   even if a test trusts it, nothing else can be, or ever will be, issued
 *   under it for a real name.
 * - `testCert` / `testKey`: the one leaf it signed (ECDSA P-256), valid
 *   2020–2120 (backdated so machines with skewed clocks still accept it), for
 *   DNS localhost, *.test, *.exchange.test, api.exchange.test, echo.test and
 *   IP 127.0.0.1 … 127.0.0.20, ::1. (Node and OpenSSL refuse the bare
 *   `*.test` wildcard, as for any single-label suffix: that is why echo.test
 *   and api.exchange.test are listed explicitly.)
 *
 * To add a name, regenerate all three with openssl (`openssl ca -selfsign`
 * for the CA with the constraints above, `openssl ca -startdate` for the
 * leaf), paste them here, and discard the CA key again.
 */

export const testCa = `-----BEGIN CERTIFICATE-----
MIIBzTCCAXSgAwIBAgICEAAwCgYIKoZIzj0EAwIwIDEeMBwGA1UEAwwVc2Vzc2lv
bi1wcm94eSB0ZXN0IENBMCAXDTIwMDEwMTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAw
WjAgMR4wHAYDVQQDDBVzZXNzaW9uLXByb3h5IHRlc3QgQ0EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAATRW427KQli9r3kF1JEYQ+MmOqU5bfbYPFGG8zKDlUJKAWZ
PCy0I9ETPt2QAt4ccZb9ldoVnbFUqneH4mu/bVrzo4GbMIGYMBIGA1UdEwEB/wQI
MAYBAf8CAQAwDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBRHWx9kQTgnP0r88Sxe
eCFPjI/8KzBTBgNVHR4BAf8ESTBHoEUwC4IJbG9jYWxob3N0MAaCBHRlc3QwCocI
fwAAAP8AAAAwIocgAAAAAAAAAAAAAAAAAAAAAf////////////////////8wCgYI
KoZIzj0EAwIDRwAwRAIgdDxl8qhfB9yh8M3jQuHsNi0AtkFnBP3pNZxKfBRWisIC
IB1KGUbWKVqdYpKJh8g+l0FpNcMxOQ6qpi2mphU9Zgb/
-----END CERTIFICATE-----
`;

export const testCert = `-----BEGIN CERTIFICATE-----
MIICejCCAh+gAwIBAgICEAIwCgYIKoZIzj0EAwIwIDEeMBwGA1UEAwwVc2Vzc2lv
bi1wcm94eSB0ZXN0IENBMCAXDTIwMDEwMTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAw
WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AAQWmoG1muFU3Dj8gEhM3zkzltA5aJ0H6BJpSfc42vOnfAeprR6x3kG4Mo1QPHWX
awVeYi9B7GYAMqiUjNN2JDEao4IBUTCCAU0wDAYDVR0TAQH/BAIwADAOBgNVHQ8B
Af8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFMQj4W0uz4B3
a/JcaZXZnVUa9euXMB8GA1UdIwQYMBaAFEdbH2RBOCc/SvzxLF54IU+Mj/wrMIHX
BgNVHREEgc8wgcyCCWxvY2FsaG9zdIIGKi50ZXN0gg8qLmV4Y2hhbmdlLnRlc3SC
EWFwaS5leGNoYW5nZS50ZXN0ggllY2hvLnRlc3SHBH8AAAGHBH8AAAKHBH8AAAOH
BH8AAASHBH8AAAWHBH8AAAaHBH8AAAeHBH8AAAiHBH8AAAmHBH8AAAqHBH8AAAuH
BH8AAAyHBH8AAA2HBH8AAA6HBH8AAA+HBH8AABCHBH8AABGHBH8AABKHBH8AABOH
BH8AABSHEAAAAAAAAAAAAAAAAAAAAAEwCgYIKoZIzj0EAwIDSQAwRgIhAMaVEEBw
WVEBGVfzpdqXuK6GFLhTRdaXWYvmeuHeidGaAiEAq//5Tvf4XgCFw0tik9JK4mAH
cIPUs1ddZpD9v8sD9mM=
-----END CERTIFICATE-----
`;

export const testKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSDdPF6nU/qXx8haI
npBup58+ymriIeTSRqpMQxMcgtmhRANCAAQWmoG1muFU3Dj8gEhM3zkzltA5aJ0H
6BJpSfc42vOnfAeprR6x3kG4Mo1QPHWXawVeYi9B7GYAMqiUjNN2JDEa
-----END PRIVATE KEY-----
`;

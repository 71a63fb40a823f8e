// A tiny app with no proxy code at all: it fetches TARGET_URL (an IP-echo
// endpoint such as https://api.ipify.org) and prints what it answered.
// Run it under the preload to route it through the configured proxies.
const target = process.env.TARGET_URL;
if (!target) {
  console.error('set TARGET_URL to an IP-echo endpoint, e.g. TARGET_URL=https://api.ipify.org');
  process.exit(2);
}
const res = await fetch(target);
console.log(`egress ${(await res.text()).trim()}`);

// Request bodies: a realistic coding-assistant prompt (about 2 KB of text with one e-mail address and
// one phone number, as real prompts often carry) in OpenAI chat and Anthropic messages shape. The
// load generator puts a number unique to each request in place of {{N}} (see post.lua): the system
// prompt repeats from request to request, the user's message never does.

const SYSTEM =
  'You are a careful senior engineer helping a colleague debug a production service. Answer concisely, ' +
  'quote the lines you refer to, and propose the smallest change that fixes the problem. If you are unsure, ' +
  'say which log lines or metrics would settle the question.';

const USER = `Ticket {{N}}. Our order service started timing out after yesterday's deploy. The on-call engineer (reach her at
maria.keller@example.com or +1 415 555 0142) rolled back the config but the p99 is still above 2 s.
Here is the handler that changed:

async function placeOrder(req, res) {
  const cart = await carts.load(req.user.id);
  for (const item of cart.items) {
    const stock = await inventory.check(item.sku);   // one round trip per item
    if (stock < item.quantity) return res.status(409).json({ error: 'out of stock', sku: item.sku });
  }
  const order = await orders.create({ userId: req.user.id, items: cart.items, total: cart.total });
  await payments.charge(order.id, cart.total, { idempotencyKey: order.id });
  res.status(201).json(order);
}

The inventory service answers in about 40 ms, carts have 1 to 60 items, and we run 8 replicas behind the
load balancer with a 2 s upstream timeout. The dashboard shows inventory QPS tripled at the same time.
What is the most likely cause, and how would you change the handler without changing the API contract?
Please also tell me whether the idempotency key is used correctly here, and what we should alert on.`;

/** The JSON body for a provider shape, streamed or not. */
export function body(provider, stream) {
  if (provider === 'anthropic') {
    return JSON.stringify({
      model: 'claude-3-5-haiku-20241022',
      max_tokens: 512,
      system: SYSTEM,
      messages: [{ role: 'user', content: USER }],
      ...(stream ? { stream: true } : {}),
    });
  }
  return JSON.stringify({
    model: 'gpt-4o-mini',
    max_tokens: 512,
    messages: [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: USER },
    ],
    ...(stream ? { stream: true } : {}),
  });
}

/** The path of the provider's endpoint under a base without `/v1`. */
export function endpoint(provider) {
  return provider === 'anthropic' ? '/v1/messages' : '/v1/chat/completions';
}

/** Auth headers as "name: value" lines (the fake upstream and nginx ignore them; the router checks them). */
export function authHeaders(provider, token) {
  return provider === 'anthropic' ? [`x-api-key: ${token}`, 'anthropic-version: 2023-06-01'] : [`Authorization: Bearer ${token}`];
}

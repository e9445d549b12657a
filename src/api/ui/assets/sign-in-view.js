// Sign-in: the API token, entered once per browser tab and kept in sessionStorage.

import { h, replace } from './dom.js';

/** Shows the sign-in form in `main`; calls `onToken(token)`, which resolves or throws the reason it was refused. */
export function mountSignIn(main, { message, onToken }) {
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    required: true,
    maxlength: 4096,
    'aria-describedby': 'token-help',
  });
  const error = h('p', { class: 'error', role: 'alert', hidden: !message }, message ?? '');
  const form = h(
    'form',
    {
      class: 'sign-in',
      'aria-labelledby': 'sign-in-title',
      onsubmit: async (e) => {
        e.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        try {
          await onToken(token);
        } catch (err) {
          error.hidden = false;
          error.textContent = err.message;
          input.focus();
        }
      },
    },
    h('h1', { id: 'sign-in-title' }, 'Sign in to vane'),
    error,
    h('label', { for: 'token' }, 'API token'),
    input,
    h(
      'p',
      { id: 'token-help', class: 'help' },
      'Kept in this tab only (sessionStorage) and sent as a bearer header; closing the tab forgets it.',
    ),
    h('button', { type: 'submit' }, 'Sign in'),
  );
  replace(main, form);
  input.focus();
  return () => {};
}

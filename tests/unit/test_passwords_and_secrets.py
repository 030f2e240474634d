from __future__ import annotations

import threading

from idp.services import secrets
from idp.services.passwords import Passwords


def _passwords(time_cost: int = 1) -> Passwords:
    return Passwords(time_cost=time_cost, memory_kib=8, parallelism=1)


def test_password_hash_is_argon2id_and_verifies():
    passwords = _passwords()
    hashed = passwords.hash("Sikker-kode-1")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify(hashed, "Sikker-kode-1")
    assert not passwords.verify(hashed, "sikker-kode-1")


def test_missing_hash_never_verifies():
    assert not _passwords().verify(None, "not a real password")


def test_changed_parameters_ask_for_a_rehash():
    hashed = _passwords(time_cost=1).hash("Sikker-kode-1")
    assert _passwords(time_cost=2).needs_rehash(hashed)
    assert not _passwords(time_cost=1).needs_rehash(hashed)


def test_secrets_have_256_bits_and_are_stored_as_sha256():
    value = secrets.new_secret()
    assert len(value) >= 43
    assert len(secrets.digest(value)) == 64
    assert secrets.matches(value, secrets.digest(value))
    assert not secrets.matches(value + "x", secrets.digest(value))
    assert not secrets.matches(value, None)


def _most_at_once(passwords: Passwords, hashed: str, threads: int) -> int:
    """Verify from ``threads`` threads at once; the most verifications that
    were inside argon2 at the same moment."""
    inside, most, lock = 0, 0, threading.Lock()
    hasher = passwords._hasher

    class Counted:
        def verify(self, *args: str) -> bool:
            nonlocal inside, most
            with lock:
                inside += 1
                most = max(most, inside)
            try:
                return hasher.verify(*args)
            finally:
                with lock:
                    inside -= 1

    passwords._hasher = Counted()  # type: ignore[assignment]
    start = threading.Barrier(threads)
    results: list[bool] = []

    def login() -> None:
        start.wait()
        for _ in range(3):
            results.append(passwords.verify(hashed, "Sikker-kode-1"))

    workers = [threading.Thread(target=login) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results == [True] * 3 * threads
    return most


def test_a_process_computes_as_many_hashes_at_once_as_configured():
    one = Passwords(time_cost=1, memory_kib=4096, parallelism=1)
    assert _most_at_once(one, one.hash("Sikker-kode-1"), threads=4) == 1
    two = Passwords(time_cost=1, memory_kib=4096, parallelism=1, concurrency=2)
    assert _most_at_once(two, two.hash("Sikker-kode-1"), threads=4) == 2

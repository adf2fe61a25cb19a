"""The rows of SECURITY.md's promise table, each with its mechanism taken out.

For ``tools/claims_check.py``: each ``Mutation`` is a minimal edit of a file under
``src/certfleet/`` that removes (or, for "never logged", breaks) one mechanism a row
describes, and the tests of that row that must fail once it is gone. ``old`` must occur
exactly once in the file. Test ids are relative to ``tests/`` and must be ones the row
names (``tests/unit/test_docs_claims.py`` checks both the row titles and the ids).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    path: str                          # under src/certfleet/
    edits: tuple[tuple[str, str], ...]  # (old, new): old occurs once in the file
    what: str                          # the mechanism removed, in words
    tests: tuple[str, ...]             # relative to tests/


@dataclass(frozen=True)
class Row:
    promise: int
    title: str                         # exactly as in the table's second column
    mutations: tuple[Mutation, ...]


def m(path: str, old: str, new: str, what: str, *tests: str,
      more: tuple[tuple[str, str], ...] = ()) -> Mutation:
    return Mutation(path, ((old, new), *more), what, tests)


ROWS: tuple[Row, ...] = (
    Row(1, "working certificate never lost: versions", (
        m("fsutil.py",
          "        os.symlink(target, tmp)\n        os.replace(tmp, link)\n",
          "        with contextlib.suppress(FileNotFoundError):\n"
          "            os.unlink(link)\n        os.symlink(target, link)\n",
          "links switched by unlink then symlink, not one rename",
          "unit/test_fsutil.py::test_replace_symlink_never_shows_a_reader_a_missing_link",
          "unit/test_fsutil.py::test_replace_symlink_crashing_at_any_step_leaves_a_whole_link"),
        m("certs.py",
          "    if not _same_key(public_key, leaf.public_key()):\n",
          "    if False:\n",
          "no check that the certificate's key is the CSR's",
          "unit/test_certs.py::test_wrong_key",
          "adversarial/test_hostile_ca.py::test_certificate_key_differs_from_csr"),
        m("certs.py",
          "            child.verify_directly_issued_by(parent)\n",
          "            pass\n",
          "no check that each certificate is signed by the next",
          "unit/test_certs.py::test_chain_from_another_ca",
          "adversarial/test_hostile_ca.py::test_chain_does_not_verify"),
        m("fsutil.py",
          "_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC\n",
          "_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC\n",
          "files created without O_EXCL|O_NOFOLLOW",
          "unit/test_fsutil.py::test_write_new_refuses_existing_file_and_symlink"),
        m("store/versions.py", "KEEP_VERSIONS = 5\n", "KEEP_VERSIONS = 1\n",
          "only the active version kept", "unit/test_store.py::test_prune_keeps_last_five"),
    )),
    Row(1, "… a full or read-only disk", (
        m("store/versions.py", "    if free < MIN_FREE_BYTES:\n", "    if False:\n",
          "no free-space floor before ordering",
          "integration/test_disk_faults.py::test_a_tiny_disk_is_refused_before_ordering",
          "integration/test_disk_faults.py::test_disk_full_before_ordering"),
        m("store/versions.py",
          "        fsutil.write_new(probe, b\"\\0\" * 16384, 0o600, sync=False)\n",
          "        pass\n",
          "no probe file written before ordering",
          "unit/test_store.py::test_preflight_writes_a_probe_and_leaves_nothing",
          "unit/test_store.py::test_preflight_names_what_fails"),
        m("store/versions.py",
          "    except (OSError, KeyError) as exc:\n        fsutil.remove_tree(tmp)\n",
          "    except (OSError, KeyError) as exc:\n",
          "a version that failed to be written is left behind",
          "integration/test_disk_faults.py::test_disk_full_while_writing_the_new_version"),
        m("issuance.py",
          "    bundle_url = await _resume_recorded(session, store, name, names, domain_key, "
          "solver,\n                                        spec.preferred_chain)\n",
          "    bundle_url = None\n",
          "an interrupted order is ordered again, not resumed",
          "integration/test_resume.py::test_lost_finalize_answer_is_resumed",
          "integration/test_disk_faults.py::test_disk_full_while_writing_the_new_version"),
    )),
    Row(1, "… a crash", (
        m("store/files.py",
          "                if fsutil.TMP_MARK in entry and fsutil.is_leftover(entry):\n",
          "                if False:\n",
          "a killed run's temporary files are not swept",
          "unit/test_store.py::test_crash_leftovers_are_swept",
          "unit/test_store.py::test_a_killed_run_is_swept_by_the_next"),
        m("store/versions.py",
          "        if fsutil.TMP_MARK in entry.name and fsutil.is_leftover(entry.name):\n",
          "        if False:\n",
          "leftover versions are not swept when pruning",
          "unit/test_store.py::test_crash_leftovers_are_swept"),
        m("store/locks.py",
          "            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n",
          "            pass\n",
          "no flock on a certificate's lock",
          "faults/test_concurrent_runs.py::"
          "test_run_killed_holding_a_lock_does_not_block_the_next"),
    )),
    Row(1, "… a failed deploy", (
        m("deploy/local.py",
          "            verify_copy(item, os.pread(fd, len(item.data) + 1, 0), "
          "f\"{where}/{item.name}\")\n",
          "            verify_copy(item, os.pread(fd, len(item.data) + 1, 0), "
          "f\"{where}/{item.name}\")\n"
          "            os.rename(tmp, item.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)\n",
          "locally, each file renamed into place as soon as it is written",
          "faults/test_deploy_faults.py::test_local_disk_full",
          more=(("            os.rename(tmp, item.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)\n"
                 "            renamed.add(tmp)\n", "            renamed.add(tmp)\n"),)),
        m("deploy/sftp_files.py",
          "            await target.sftp.rename(temp.path, temp.final)\n"
          "            except asyncssh.SFTPError:\n",
          "            pass\n            except asyncssh.SFTPError:\n",
          "over SSH, each file renamed into place as soon as it is written",
          "faults/test_deploy_faults.py::test_ssh_disk_full",
          more=(("    verify_copy(item, await sftp.read(handle, len(item.data) + 1, what), what)\n",
                 "    verify_copy(item, await sftp.read(handle, len(item.data) + 1, what), what)\n"
                 "    await sftp.rename(path, temp.final)\n"),)),
        m("deploy/local.py",
          "            if tmp not in renamed:\n", "            if False:\n",
          "locally, the temporary files of a failed deploy are left behind",
          "faults/test_deploy_faults.py::test_local_disk_full"),
        m("deploy/batch.py",
          "            installed = await _install_all(jobs, transport, errors)\n"
          "            settings = jobs[0].settings\n"
          "            if installed and settings.reload:\n",
          "            settings = jobs[0].settings\n"
          "            if settings.reload:  # before the files are in place\n"
          "                await transport.run(settings.reload)\n"
          "            installed = await _install_all(jobs, transport, errors)\n"
          "            if False:\n",
          "the reload runs before the host's files are in place",
          "integration/test_deploy_ssh.py::test_known_hosts_setting_alone_vouches_for_the_host"),
    )),
    Row(2, "keys stay on the Work host", (
        m("fsutil.py",
          "    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):\n"
          "        raise StoreError(f\"{path}: writable by group or others; refusing to use "
          "it\")\n",
          "",
          "a state directory others can write is used",
          "integration/test_secrets.py::test_a_state_directory_others_can_write_is_refused",
          "unit/test_fsutil.py::test_secure_dir_refuses_writable_by_others"),
        m("fsutil.py",
          "    if info.st_uid != os.geteuid():\n"
          "        raise StoreError(f\"{path}: owned by uid {info.st_uid}, not by this user\")\n",
          "",
          "a state directory of another user is used",
          "unit/test_fsutil.py::test_secure_dir_refuses_a_directory_another_user_owns"),
        m("fsutil.py",
          "        info = os.lstat(path)\n", "        info = os.stat(path)\n",
          "a state directory that is a symlink is followed",
          "integration/test_secrets.py::test_a_symlinked_state_directory_is_refused",
          "unit/test_fsutil.py::test_secure_dir_refuses_symlink"),
        m("account_key.py", "    if info.st_mode & 0o077:\n", "    if False:\n",
          "an account key others can read is used",
          "unit/test_account.py::test_key_readable_by_others_is_refused"),
        m("store/versions.py",
          "            mode = 0o600 if pem == \"privkey.pem\" else 0o644\n",
          "            mode = 0o644\n",
          "a new version's private key is written 0644",
          "integration/test_secrets.py::test_key_files_0600_and_directories_0700"),
    )),
    Row(2, "… and are not reached through links", (
        m("fsutil.py",
          "    try:\n        fd = os.open(path, _READ | os.O_NOFOLLOW)\n"
          "    except FileNotFoundError:\n"
          "        raise\n    except OSError as exc:\n        raise StoreError(f\"{path}: cannot "
          "read: {exc.strerror or exc}\") from exc\n    return _read_fd(fd, path, limit)\n",
          "    try:\n        fd = os.open(path, _READ)\n    except FileNotFoundError:\n"
          "        raise\n    except OSError as exc:\n        raise StoreError(f\"{path}: cannot "
          "read: {exc.strerror or exc}\") from exc\n    return _read_fd(fd, path, limit)\n",
          "records read through a planted link",
          "integration/test_secrets.py::test_symlink_planted_at_state_json_is_not_followed",
          "unit/test_fsutil.py::test_read_small_refuses_symlink_and_missing"),
        m("solvers/token_dir.py",
          "            fsutil.write_atomic(self.directory / token, "
          "f\"{name}\\n{key_auth}\\n\".encode(),\n"
          "                                mode=0o600)\n",
          "            (self.directory / token).write_bytes("
          "f\"{name}\\n{key_auth}\\n\".encode())\n",
          "a challenge token written through whatever is at its name",
          "integration/test_secrets.py::"
          "test_symlink_planted_at_a_challenge_token_is_not_followed"),
    )),
    Row(3, "no shell", (
        m("solvers/dns_hook.py",
          "            proc = await asyncio.create_subprocess_exec(\n                *argv,",
          "            proc = await asyncio.create_subprocess_shell(\n"
          "                \" \".join(argv),",
          "DNS hooks run through a shell",
          "unit/test_dns_hook.py::test_present_and_cleanup_run_the_hook_without_a_shell"),
        m("deploy/ssh.py",
          "        conn, command = self._conn, shlex.join(argv)\n",
          "        conn, command = self._conn, \" \".join(argv)\n",
          "the remote command line joined without quoting",
          "integration/test_deploy_ssh.py::test_reload_words_reach_the_remote_command_as_they_are"),
        m("config/domains.py",
          "    if token.startswith(\"-\"):\n        raise ConfigError(\"a target must not start "
          "with '-'\")\n", "",
          "a target may start with '-'",
          "unit/test_domains_hostile.py::test_hostile_targets"),
        m("config/values.py",
          "        if ch in SHELL_META:\n            raise ConfigError(f\"shell metacharacter "
          "{ch!r} in path\")\n", "",
          "shell metacharacters in a path",
          "unit/test_config.py::test_shell_metacharacters_in_path_are_refused"),
        m("config/values.py",
          "    if isinstance(value, str):\n        raise ConfigError(\"reload must be a list "
          "(argv), not a shell string\")\n", "",
          "reload given as a string",
          "unit/test_config.py::test_toml_errors"),
        m("protocol/messages.py",
          "    return 22 <= len(token) <= 256 and is_b64url(token)\n",
          "    return 0 < len(token)\n",
          "any challenge token becomes a file name",
          "adversarial/test_hostile_token.py::test_hostile_token_writes_nothing"),
    )),
    Row(4, "secrets never logged", (
        m("acme_client.py",
          "            response = await self._request(\"POST\", url, data=body, headers=headers)\n",
          "            log.debug(\"POST %s %s\", url, body)\n"
          "            response = await self._request(\"POST\", url, data=body, headers=headers)\n",
          "each JWS logged at debug level",
          "integration/test_secrets.py::test_no_secret_in_any_output"),
        m("registration.py",
          "        log.info(\"binding the new account to external account %s\", "
          "safe_text(eab[0]))\n",
          "        log.info(\"binding the new account to external account %s (%r)\", "
          "safe_text(eab[0]), eab[1])\n",
          "the EAB MAC key logged with its identifier",
          "unit/test_eab.py::test_mac_key_never_logged"),
        m("solvers/dns_rfc2136.py",
          "                f\"key_name={self.key_name!r}, "
          "key_algorithm={self.key_algorithm!r})\")\n",
          "                f\"key_name={self.key_name!r}, key={self._key!r})\")\n",
          "the TSIG key in the solver's repr",
          "unit/test_dns_rfc2136.py::test_secret_never_in_repr_messages_or_logs"),
    )),
    Row(5, "no terminal escapes", (
        m("errors.py",
          "    return f\"\\\\x{ord(ch):02x}\" if ord(ch) < 0x100 else f\"\\\\u{ord(ch):04x}\"\n",
          "    return ch\n",
          "safe_text passes control characters through",
          "unit/test_errors.py::test_escapes_terminal_sequences",
          "adversarial/test_ca_responses.py::test_problem_with_terminal_escapes",
          "unit/test_parsers_hypothesis.py::test_safe_text"),
    )),
    Row(5, "… and the CA's answers never crash certfleet", (
        m("acme_client.py", "MAX_BODY = 1 << 20 ", "MAX_BODY = 1 << 30 ",
          "bodies capped at 1 GiB instead of 1 MiB",
          "adversarial/test_ca_responses.py::test_oversized_directory",
          "adversarial/test_ca_responses.py::test_oversized_chunked_body",
          "adversarial/test_hostile_ca.py::test_oversized_certificate"),
        m("acme_client.py",
          "                if not _same_origin(current, response.location):\n",
          "                if False:\n",
          "redirects to another origin followed",
          "adversarial/test_ca_responses.py::test_redirect_to_other_host_refused"),
        m("acme_client.py",
          "        allowed = (\"https\", \"http\") if self.allow_http else (\"https\",)\n",
          "        allowed = (\"https\", \"http\")\n",
          "plain-http URLs from the CA accepted",
          "unit/test_acme_client.py::test_only_https_urls_unless_allowed",
          "unit/test_acme_client.py::test_a_directory_naming_a_plain_http_url_is_refused"),
        m("protocol/messages.py", "MAX_LIST = 1000", "MAX_LIST = 10**9",
          "lists in CA answers not capped",
          "unit/test_messages.py::test_order_too_many_identifiers"),
    )),
    Row(5, "… nor SSH servers' text, at any verbosity", (
        m("deploy/ssh.py",
          "    return safe_text(str(exc) or type(exc).__name__)\n",
          "    return str(exc) or type(exc).__name__\n",
          "an SSH server's disconnect reason shown unescaped",
          "adversarial/test_hostile_ssh.py::test_banner_debug_and_disconnect_reason_are_escaped"),
        m("deploy/ssh.py",
          "            reason = safe_text(exc.reason or type(exc).__name__)\n",
          "            reason = exc.reason or type(exc).__name__\n",
          "an SFTP error reason shown unescaped",
          "adversarial/test_hostile_ssh.py::test_sftp_error_reason_is_escaped"),
        m("cli/output.py",
          "        return visible(super().formatMessage(record))\n",
          "        return super().formatMessage(record)\n",
          "log records not escaped by the CLI's formatter",
          "adversarial/test_hostile_ssh.py::test_log_records_are_escaped"),
    )),
    Row(6, "bounded retries and waits", (
        m("acme_client.py", "max_bad_nonce: int = 100,", "max_bad_nonce: int = 1000,",
          "badNonce retried 1,000 times",
          "adversarial/test_ca_responses.py::test_bad_nonce_forever_is_bounded"),
        m("protocol/timing.py",
          "    return min(max(seconds, low), high)\n", "    return max(seconds, low)\n",
          "Retry-After not clamped",
          "adversarial/test_retry_after.py::test_validation_that_never_ends",
          "unit/test_timing.py::test_clamp"),
        m("order.py", "MAX_ALTERNATES = 10  #", "MAX_ALTERNATES = 10**6  #",
          "every alternate chain fetched",
          "adversarial/test_hostile_ca.py::test_thousands_of_alternate_links"),
        m("protocol/backoff.py", "MAX_RETRY_AFTER = timedelta(days=7)",
          "MAX_RETRY_AFTER = timedelta(days=7000)",
          "a failure's Retry-After honoured beyond 7 days",
          "unit/test_backoff.py::test_retry_after_is_respected_and_clamped"),
        m("protocol/ari.py",
          "    return now + min(max(timedelta(seconds=retry_after), MIN_RECHECK), MAX_RECHECK)\n",
          "    return now + timedelta(seconds=retry_after)\n",
          "renewalInfo's Retry-After not clamped",
          "unit/test_ari.py::test_recheck_after_honours_retry_after_within_bounds"),
        m("solvers/dns_hook.py",
          "        os.killpg(pgid, signal.SIGKILL)\n", "        os.kill(pgid, signal.SIGKILL)\n",
          "a DNS hook killed without its children",
          "unit/test_dns_hook.py::test_timeout_kills_the_hook_and_its_children"),
    )),
    Row(6, "… hostile targets and probes", (
        m("deploy/sftp_files.py",
          "            done, _ = await asyncio.wait({request}, timeout=OP_TIMEOUT)\n",
          "            done, _ = await asyncio.wait({request})\n",
          "SFTP requests not bounded",
          "adversarial/test_hostile_ssh.py::test_sftp_server_that_stops_answering"),
        m("deploy/probe.py",
          "        async with asyncio.timeout(bound):\n",
          "        async with asyncio.timeout(None):\n",
          "the probe's retry loop not bounded",
          "unit/test_probe.py::test_the_retry_loop_is_bounded_even_when_an_attempt_is_not"),
        m("deploy/probe.py",
          "        asyncio.open_connection(address, port, ssl=context, server_hostname=sni),\n"
          "        ATTEMPT_TIMEOUT)\n",
          "        asyncio.open_connection(address, port, ssl=context, server_hostname=sni),\n"
          "        None)\n",
          "a probe attempt not bounded",
          "adversarial/test_hostile_probes.py::test_server_that_never_answers"),
        m("deploy/batch.py",
          "    except Exception as exc:  # a fault of certfleet's own must not stop the other "
          "hosts\n",
          "    except ZeroDivisionError as exc:\n",
          "a fault of one host's deploy ends the others",
          "unit/test_deploy_batch.py"),
    )),
    Row(7, "faulty input refused first", (
        m("config/problems.py", "        if self.shown:\n", "        if False:\n",
          "configuration faults collected but never raised",
          "integration/test_fleet.py::test_bad_domains_file_runs_nothing",
          "unit/test_domains_hostile.py::test_certfleet_run_reports_and_runs_nothing"),
        m("config/problems.py",
          "        if len(self.shown) < MAX_REPORTED:\n", "        if True:\n",
          "every fault reported, however many",
          "unit/test_config.py::test_at_most_100_problems_then_a_count",
          "unit/test_domains_hostile.py::test_100000_faults_are_reported_as_100_and_a_count",
          more=(("        self.problems = list(problems[:MAX_REPORTED])\n",
                 "        self.problems = list(problems)\n"),
                ("        self.more = more + max(0, len(problems) - MAX_REPORTED)\n",
                 "        self.more = more\n"))),
        m("config/domains.py", "        if len(raw_names) > MAX_NAMES:\n", "        if False:\n",
          "more than 100 names on a line",
          "unit/test_config.py::test_malformed_line_names_file_line_and_fault"),
        m("names.py", "        if len(alabel) > MAX_LABEL:\n", "        if False:\n",
          "labels longer than 63 characters",
          "unit/test_domains_hostile.py::test_length_limits_are_exact"),
    )),
    Row(8, "responder: only the presented token, only for its name", (
        m("solvers/http_responder.py",
          "        ok = entry is not None and host is not None and host_matches(host, entry[0])\n",
          "        ok = entry is not None\n",
          "a token answered for any Host",
          "unit/test_http_server.py::test_host_cases_over_a_socket"),
        m("solvers/http_head.py",
          "    host = host.lower().removesuffix(\".\")\n",
          "    host = host.lower().rstrip(\".\")\n",
          "any number of trailing dots dropped from the Host",
          "unit/test_http_server.py::test_host_matches"),
        m("solvers/http_responder.py",
          "        if head.method != \"GET\" or not token_is_safe(token):\n",
          "        if not token_is_safe(token):\n",
          "methods other than GET answered",
          "unit/test_http_server.py::test_other_methods_are_404",
          "unit/test_http_server.py::test_head_is_404_without_a_body"),
    )),
    Row(8, "… malformed input is one 400 and one line", (
        m("solvers/http_head.py",
          "    if len(parsed.get_all(\"host\")) > 1:\n", "    if False:\n",
          "two Host fields accepted",
          "unit/test_http_server.py::test_malformed_requests_are_400"),
        m("solvers/http_head.py",
          "    if any(length != \"0\" for length in lengths):\n", "    if False:\n",
          "a request with a body accepted",
          "unit/test_http_server.py::test_malformed_requests_are_400",
          "unit/test_http_server_limits.py::"
          "test_a_body_that_never_ends_gets_its_400_and_the_close"),
        m("solvers/http_head.py",
          "    if len(lines) - 1 > MAX_HEADERS:\n", "    if False:\n",
          "any number of header fields",
          "unit/test_http_server.py::test_oversized_heads_are_431"),
    )),
    Row(8, "… and keeps answering under a flood", (
        m("solvers/http_limits.py",
          "        if len(self._conns.get(client, ())) >= self.per_client:\n",
          "        if False:\n",
          "no per-client cap",
          "unit/test_http_server_limits.py::"
          "test_over_the_per_client_cap_new_connections_are_closed_at_once"),
        m("solvers/http_limits.py",
          "            if victim is None or victim.transport is None:\n",
          "            if True:\n",
          "no idle connection dropped for a new one",
          "unit/test_http_server_limits.py::"
          "test_over_the_total_cap_the_oldest_idle_of_the_heaviest_client_is_dropped"),
        m("solvers/http_responder.py",
          "        deadline = loop.time() + limits.header_timeout\n",
          "        deadline = loop.time() + 3600\n",
          "no deadline for the request head",
          "unit/test_http_server_limits.py::test_slowloris_is_closed_at_the_head_deadline"),
    )),
    Row(9, "no mode or owner change through a link", (
        m("deploy/sftp_files.py",
          "    await sftp.fsetstat(handle, asyncssh.SFTPAttrs(permissions=item.mode), what)\n",
          "    await sftp._bounded(what, sftp.client.setstat(\n"
          "        path, asyncssh.SFTPAttrs(permissions=item.mode)))\n",
          "over SSH, a file's mode set by path",
          "faults/test_hostile_targets.py::"
          "test_ssh_symlink_at_a_temporary_name_changes_no_other_file"),
        m("deploy/sftp_files.py",
          "        await sftp.fsetstat(handle, asyncssh.SFTPAttrs(\n",
          "        await sftp._bounded(what, sftp.client.setstat(path, asyncssh.SFTPAttrs(\n",
          "over SSH, a file's owner set by path",
          "faults/test_hostile_targets.py::"
          "test_ssh_symlink_at_a_temporary_name_changes_no_other_file",
          more=(("            gid=now.gid if ids.gid is None else ids.gid), what)\n",
                 "            gid=now.gid if ids.gid is None else ids.gid)))\n"),)),
        m("deploy/sftp_files.py",
          "self.client.setstat(path, attrs, follow_symlinks=False)",
          "self.client.setstat(path, attrs, follow_symlinks=True)",
          "over SSH, the new directory's mode set following links",
          "faults/test_hostile_targets.py::test_ssh_own_directory_swapped_right_after_mkdir"),
        m("deploy/sftp_files.py",
          "    if not stat.S_ISDIR(mode):\n        raise DeployError(f\"{target.where}: refused: "
          "the certificate's own directory is \"\n",
          "    if False:\n        raise DeployError(f\"{target.where}: refused: "
          "the certificate's own directory is \"\n",
          "over SSH, a link where the certificate's directory goes is used",
          "faults/test_hostile_targets.py::test_ssh_own_directory_planted_as_a_symlink_is_refused"),
        m("deploy/local.py",
          "_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC\n",
          "_CREATE = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC\n",
          "locally, temporary files opened through whatever is at their name",
          "faults/test_hostile_targets.py::test_a_link_at_a_guessed_temporary_name_is_never_opened"),
        m("deploy/local.py",
          "            if (now.st_dev, now.st_ino) != (ours.st_dev, ours.st_ino):\n",
          "            if False:\n",
          "locally, a temporary file swapped for a link before its rename goes unnoticed",
          "faults/test_hostile_targets.py::"
          "test_local_symlink_at_a_temporary_name_changes_no_other_file"),
        m("deploy/local.py",
          "        fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent)\n",
          "        fd = os.open(name, _DIR, dir_fd=parent)\n",
          "locally, a link where the certificate's directory goes is followed",
          "faults/test_hostile_targets.py::"
          "test_local_own_directory_planted_as_a_symlink_is_refused"),
    )),
    Row(9, "… special files fail their target only, in bounded time", (
        m("deploy/sftp_files.py",
          "    if attrs is not None and not stat.S_ISREG(mode):\n", "    if False:\n",
          "over SSH, whatever is at a final name is renamed over",
          "faults/test_hostile_targets.py::test_ssh_special_file_at_a_final_name_is_refused"),
        m("deploy/local.py",
          "                if not stat.S_ISREG(mode):\n", "                if False:\n",
          "locally, whatever is at a final name is renamed over",
          "faults/test_hostile_targets.py::test_local_special_file_at_a_final_name_is_refused"),
        m("deploy/sftp_files.py",
          "    if _differs(temp.attrs, attrs, dirs=False):\n", "    if False:\n",
          "over SSH, a final name swapped after the rename goes unnoticed",
          "faults/test_hostile_targets.py::"
          "test_ssh_file_swapped_in_at_a_final_name_after_the_rename_is_noticed"),
    )),
    Row(9, "… tamperable target directories refused", (
        m("deploy/dircheck.py",
          "    if bits & stat.S_IWOTH and not sticky:\n", "    if False:\n",
          "target directories others can write are used",
          "faults/test_target_dirs.py::test_ssh_directory_writable_by_others",
          "faults/test_target_dirs.py::test_local_directory_writable_by_others"),
        m("deploy/dircheck.py",
          "    if seen.uid not in trust.uids:\n", "    if False:\n",
          "target directories of other users are used",
          "faults/test_target_dirs.py::test_ssh_directory_owned_by_another_user",
          "faults/test_target_dirs.py::test_local_directory_owned_by_another_user"),
        m("deploy/dircheck.py",
          "    if stat.S_ISLNK(mode):\n", "    if False:\n",
          "target directories reached through links",
          "faults/test_target_dirs.py::test_ssh_directory_reached_through_a_symlink",
          "faults/test_target_dirs.py::test_local_directory_reached_through_a_symlink"),
    )),
    Row(10, "an import changes nothing it reads, and runs nothing it finds", (
        m("migrate/source.py",
          "    if not stat.S_ISREG(info.st_mode):\n        raise _fault(path, "
          "f\"{_kind(info.st_mode)}, not a file\")\n", "",
          "special files in the source tree opened",
          "unit/test_migrate.py::test_source_reader_one_line_per_fault"),
        m("migrate/render.py",
          "    return f\"# {visible(text)}\".rstrip()\n", "    return f\"# {text}\".rstrip()\n",
          "comments written unescaped",
          "unit/test_migrate.py::test_written_config_cannot_be_steered_by_the_source"),
        m("migrate/carry.py",
          "        if store.versions(name) or store.current(name) is not None:\n",
          "        if False:\n",
          "a certificate the state directory has is written over",
          "integration/test_migrate_acme_client.py::test_existing_state_is_never_replaced",
          more=(("    if store is None or not store.has_cert(cert.name):\n",
                 "    if True:\n"),)),
    )),
    Row(11, "a CA's values are bounded before they are kept or printed", (
        m("state.py",
          "        error = None if error is None else error[:MAX_ERROR]\n",
          "        error = error\n",
          "a failure's text kept whole",
          "unit/test_state.py::test_values_from_the_ca_are_bounded",
          "adversarial/test_hostile_values.py::test_a_huge_problem_detail_is_bounded_everywhere"),
        m("protocol/ari.py",
          "    if not isinstance(explanation, str) or len(explanation) > MAX_EXPLANATION \\\n"
          "            or not explanation.isprintable():\n",
          "    if not isinstance(explanation, str):\n",
          "an explanation URL of any size or content kept",
          "adversarial/test_hostile_values.py::"
          "test_renewal_explanations_are_bounded_and_never_printed_raw"),
        m("solvers/dns_hook.py",
          '    return [*command, action, "--", name,',
          "    return [*command, action, name,",
          "the hook's values passed without `--`",
          "unit/test_dns_hook.py::test_a_value_starting_with_a_dash_is_never_an_option"),
    )),
    Row(12, "local users on the Work host cannot steer it", (
        m("fsutil.py",
          "    if info.st_uid not in (me, 0):\n", "    if False:\n",
          "an input file another user owns accepted",
          "adversarial/test_hostile_local.py::"
          "test_a_file_another_user_owns_is_refused_whatever_its_mode"),
        m("fsutil.py",
          "    if secret and mode & 0o077:\n", "    if False:\n",
          "a secret others can read accepted",
          "adversarial/test_hostile_local.py::test_a_secret_others_can_read_or_own_is_refused"),
    )),
    Row(13, "`nginx-config` never pastes a value that changes the text's meaning", (
        m("nginx_config.py",
          "    if not _WORK.fullmatch(work):\n", "    if False:\n",
          "any Work address pasted",
          "unit/test_nginx_config.py::test_work_addresses_that_change_the_meaning_are_refused"),
        m("nginx_config.py",
          '    if not _PATH.fullmatch(text) or "/../" in f"{text}/":\n', "    if False:\n",
          "any webroot pasted",
          "unit/test_nginx_config.py::test_webroots_that_change_the_meaning_are_refused"),
    )),
)

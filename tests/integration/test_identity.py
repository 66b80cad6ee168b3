"""identity against the real running processes (identity, graph, posts) and PostgreSQL.

Every test makes its own users (t_<8 hex>), so runs never collide.
"""

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from aviary.graph.v1 import graph_pb2
from aviary.identity.v1 import identity_pb2
from services.kit.server.auth import verify_token

PASSWORD = "correct horse battery"


def new_username() -> str:
    return f"t_{secrets.token_hex(4)}"


def sign_up(identity, username=None, password=PASSWORD, display_name=""):
    return identity.CreateAccount(
        identity_pb2.CreateAccountRequest(
            username=username or new_username(), password=password, display_name=display_name
        ),
        timeout=10,
    )


def bearer(token: str):
    return (("authorization", f"Bearer {token}"),)


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(*args, timeout=10, **kwargs)
    return err.value


def assert_no_account(identity, username: str) -> None:
    err = rpc_error(identity.LookupUser, identity_pb2.LookupUserRequest(username=username))
    assert err.code() == grpc.StatusCode.NOT_FOUND


# -- sign-up -------------------------------------------------------------------


def test_sign_up_returns_the_user_and_a_token_that_verifies(identity):
    username = new_username()
    before = time.time()
    created = sign_up(identity, username)

    assert created.user.username == username
    assert created.user.display_name == username  # defaults to the username
    assert int(created.user.id) > 0
    assert created.user.created_at.seconds >= int(before) - 5
    claims = verify_token(created.access_token)
    assert claims["sub"] == created.user.id
    assert claims["username"] == username
    assert created.expire_time.seconds == claims["exp"]
    assert created.expire_time.seconds > time.time()


def test_sign_up_keeps_the_given_display_name(identity):
    created = sign_up(identity, display_name="  Ada Lovelace  ")
    assert created.user.display_name == "Ada Lovelace"


def test_username_taken_in_any_case_is_already_exists(identity):
    username = new_username()
    sign_up(identity, username)
    for variant in (username, username.upper(), username.capitalize()):
        err = rpc_error(
            identity.CreateAccount,
            identity_pb2.CreateAccountRequest(username=variant, password=PASSWORD),
        )
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS
        assert err.details() == f"username: '{variant}' is already taken"


def test_concurrent_sign_ups_for_one_name_create_exactly_one_account(identity):
    username = new_username()
    variants = [username, username.upper(), username, username.upper(), username]
    with ThreadPoolExecutor(len(variants)) as pool:
        outcomes = list(pool.map(lambda name: _try_sign_up(identity, name), variants))
    assert outcomes.count("ok") == 1
    assert outcomes.count(grpc.StatusCode.ALREADY_EXISTS) == len(variants) - 1


def _try_sign_up(identity, username):
    try:
        sign_up(identity, username)
        return "ok"
    except grpc.RpcError as err:
        return err.code()


@pytest.mark.parametrize("bad", ["", "ab", "x" * 16, "bad-name", "has space", "émile"])
def test_bad_usernames_are_invalid_argument_naming_the_field(identity, bad):
    err = rpc_error(identity.CreateAccount, identity_pb2.CreateAccountRequest(username=bad, password=PASSWORD))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("username:")
    if bad:
        assert_no_account(identity, bad)


@pytest.mark.parametrize("bad", ["", "short", "x" * 129])
def test_bad_passwords_are_invalid_argument_and_write_nothing(identity, bad):
    username = new_username()
    err = rpc_error(identity.CreateAccount, identity_pb2.CreateAccountRequest(username=username, password=bad))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("password:")
    assert_no_account(identity, username)


def test_too_long_display_name_is_invalid_argument_and_writes_nothing(identity):
    username = new_username()
    err = rpc_error(
        identity.CreateAccount,
        identity_pb2.CreateAccountRequest(username=username, password=PASSWORD, display_name="é" * 51),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("display_name:")
    assert_no_account(identity, username)


# -- log-in --------------------------------------------------------------------


def test_log_in_with_any_case_of_the_username(identity):
    created = sign_up(identity)
    session = identity.CreateSession(
        identity_pb2.CreateSessionRequest(username=created.user.username.upper(), password=PASSWORD), timeout=10
    )
    assert session.user.id == created.user.id
    assert verify_token(session.access_token)["sub"] == created.user.id
    assert session.expire_time.seconds > time.time()


def test_wrong_password_and_unknown_user_get_the_same_answer(identity):
    created = sign_up(identity)
    wrong_password = rpc_error(
        identity.CreateSession,
        identity_pb2.CreateSessionRequest(username=created.user.username, password="not the password"),
    )
    unknown_user = rpc_error(
        identity.CreateSession,
        identity_pb2.CreateSessionRequest(username=new_username(), password=PASSWORD),
    )
    for err in (wrong_password, unknown_user):
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == "username or password is incorrect"


def test_log_in_without_username_is_invalid_argument(identity):
    err = rpc_error(identity.CreateSession, identity_pb2.CreateSessionRequest(username="", password=PASSWORD))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("username:")


# -- profiles --------------------------------------------------------------------


def test_get_user_me_uses_the_token(identity):
    created = sign_up(identity)
    me = identity.GetUser(identity_pb2.GetUserRequest(user_id="me"), metadata=bearer(created.access_token), timeout=10)
    assert me.id == created.user.id
    assert me.username == created.user.username
    assert (me.follower_count, me.following_count, me.post_count) == (0, 0, 0)


def test_get_user_me_without_a_token_is_unauthenticated(identity):
    err = rpc_error(identity.GetUser, identity_pb2.GetUserRequest(user_id="me"))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_get_user_counts_come_from_graph(identity, graph):
    alice, bob = sign_up(identity), sign_up(identity)
    graph.FollowUser(graph_pb2.FollowUserRequest(user_id=bob.user.id), metadata=bearer(alice.access_token), timeout=10)

    bob_profile = identity.GetUser(identity_pb2.GetUserRequest(user_id=bob.user.id), timeout=10)
    alice_profile = identity.LookupUser(identity_pb2.LookupUserRequest(username=alice.user.username), timeout=10)
    assert (bob_profile.follower_count, bob_profile.following_count) == (1, 0)
    assert (alice_profile.follower_count, alice_profile.following_count) == (0, 1)
    assert bob_profile.post_count == 0


def test_get_user_unknown_and_malformed_ids(identity):
    err = rpc_error(identity.GetUser, identity_pb2.GetUserRequest(user_id="1"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "user 1 does not exist"
    err = rpc_error(identity.GetUser, identity_pb2.GetUserRequest(user_id="12abc"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("user_id:")


def test_lookup_is_case_insensitive_and_needs_a_username(identity):
    created = sign_up(identity)
    found = identity.LookupUser(identity_pb2.LookupUserRequest(username=created.user.username.upper()), timeout=10)
    assert found.id == created.user.id
    err = rpc_error(identity.LookupUser, identity_pb2.LookupUserRequest(username=""))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("username:")


# -- batch summaries ------------------------------------------------------------


def test_batch_get_users_returns_known_ids_and_drops_unknown(identity):
    a, b = sign_up(identity), sign_up(identity)
    response = identity.BatchGetUsers(
        identity_pb2.BatchGetUsersRequest(user_ids=[a.user.id, "1", b.user.id, a.user.id]), timeout=10
    )
    by_id = {u.id: u for u in response.users}
    assert set(by_id) == {a.user.id, b.user.id}
    assert by_id[b.user.id].username == b.user.username
    assert by_id[a.user.id].follower_count == 0  # a new account: nobody follows it yet


def test_batch_get_users_limits(identity):
    err = rpc_error(identity.BatchGetUsers, identity_pb2.BatchGetUsersRequest(user_ids=["1"] * 501))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("user_ids:")
    err = rpc_error(identity.BatchGetUsers, identity_pb2.BatchGetUsersRequest(user_ids=["5", "nope"]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("user_ids[1]:")
    assert identity.BatchGetUsers(identity_pb2.BatchGetUsersRequest(user_ids=["1"] * 500), timeout=10).users == []


# -- roles -------------------------------------------------------------------------


def test_role_is_chosen_at_sign_up_returned_and_carried_in_every_token(identity):
    username = new_username()
    created = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=username, password=PASSWORD, role="Seller"), timeout=10
    )
    assert created.user.role == "SELLER"
    assert verify_token(created.access_token)["role"] == "SELLER"
    session = identity.CreateSession(
        identity_pb2.CreateSessionRequest(username=username, password=PASSWORD), timeout=10
    )
    assert session.user.role == "SELLER"
    assert verify_token(session.access_token)["role"] == "SELLER"
    assert identity.GetUser(identity_pb2.GetUserRequest(user_id=created.user.id), timeout=10).role == "SELLER"

    plain = sign_up(identity)
    assert plain.user.role == "USER"
    assert verify_token(plain.access_token)["role"] == "USER"


@pytest.mark.parametrize("role", ["ADMIN", "sellers", "USER ", "operator", "\u017feller"])
def test_an_unknown_role_is_invalid_argument_and_creates_no_account(identity, role):
    username = new_username()
    err = rpc_error(
        identity.CreateAccount, identity_pb2.CreateAccountRequest(username=username, password=PASSWORD, role=role)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "role: must be USER or SELLER"
    assert_no_account(identity, username)

"""The payments settings keep the defaults the service had before they were typed."""

import pytest

from services.kit.settings import SettingError, load
from services.payments.settings import PaymentsSettings


def test_defaults():
    s = load(PaymentsSettings, {})
    assert s.stripe_api_key == "sk_test_devstack"
    assert s.stripe_api_base == "http://127.0.0.1:12111"
    assert s.stripe_timeout_seconds == 2.0
    assert s.accepted_methods == (
        "pm_card_visa,pm_card_visa_debit,pm_card_mastercard,pm_card_mastercard_debit,"
        "pm_card_mastercard_prepaid,pm_card_amex,pm_card_discover,pm_card_diners,pm_card_jcb,"
        "pm_card_unionpay,pm_card_chargeDeclined,pm_card_visa_chargeDeclined,"
        "pm_card_chargeDeclinedInsufficientFunds"
    )
    assert s.fault_injection is False
    assert s.fault_delay_seconds == 3.0
    assert s.breaker_failures == 3
    assert s.breaker_open_seconds == 5.0
    assert s.lock_timeout_seconds == 15.0
    assert s.pg_pool_size == 20
    assert s.pg_marker_pool_size == 5
    # The kit's, read by the consumer of account deletions (payments-accounts).
    assert s.kafka_bootstrap == "127.0.0.1:9092"


def test_empty_accepted_methods_stays_empty():
    # Production sets it empty: any well-formed id, not the test cards.
    assert load(PaymentsSettings, {"AVIARY_PAYMENTS_ACCEPTED_METHODS": ""}).accepted_methods == ""


def test_a_bad_number_names_the_variable():
    with pytest.raises(SettingError, match="AVIARY_PAYMENTS_BREAKER_FAILURES"):
        load(PaymentsSettings, {"AVIARY_PAYMENTS_BREAKER_FAILURES": "three"})
